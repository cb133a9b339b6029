/** Native file entry points (native/addon/bind_file.cpp), used by the dataset cache (lib/data/cache.ts). */

export interface FileKernels {
  /**
   * The whole file at `path`, memory-mapped, as an ArrayBuffer whose pages are read when first
   * touched; the mapping is released when the ArrayBuffer is garbage-collected. The file is opened
   * read-only and mapped copy-on-write, so writes through a view change this process's copy, never
   * the file. An empty file gives an empty ArrayBuffer. Errors name the file and the reason
   * ("diffvit.mapFile: <path>: cannot open (No such file or directory)").
   */
  mapFile(path: string): ArrayBuffer;
}
