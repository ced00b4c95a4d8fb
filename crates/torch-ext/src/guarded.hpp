// What bridge.cpp and dist.cpp share: the thread-local last error and `guarded`, which
// keeps C++ exceptions from crossing the C ABI.
#pragma once

#include <exception>
#include <string>

namespace sbx {

// The message of the last failed call on this thread (read with sbx_last_error).
std::string& last_error();

// Run `f`; on an exception, keep its message in last_error() and return `on_error`.
template <typename F>
auto guarded(F f, decltype(f()) on_error) -> decltype(f()) {
  try {
    last_error().clear();
    return f();
  } catch (const std::exception& e) {
    last_error() = e.what();
  } catch (...) {
    last_error() = "unknown C++ exception";
  }
  return on_error;
}

}  // namespace sbx
