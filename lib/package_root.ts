/** The installed package's root folder: where build/, dist/ and bench/ are found. */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The nearest directory above this file holding diffvit's package.json. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && JSON.parse(readFileSync(pkg, 'utf8')).name === 'diffvit') return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('diffvit: cannot find the package root above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}
