// Errors raised by native code. The addon layer turns every dv::Error into a JS Error whose message
// names the op, the argument, what was expected and what came.
#pragma once
#include <stdexcept>
#include <string>

namespace dv {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// "diffvit.<op>: argument '<arg>' expected <expected>, received <received>"
[[noreturn]] inline void fail_arg(const std::string& op, const std::string& arg, const std::string& expected,
                                  const std::string& received) {
  throw Error("diffvit." + op + ": argument '" + arg + "' expected " + expected + ", received " + received);
}

[[noreturn]] inline void fail(const std::string& op, const std::string& what) {
  throw Error("diffvit." + op + ": " + what);
}

}  // namespace dv
