// Declarations only (see ../README.md).
#pragma once

#include <chrono>

namespace gloo {

// Named by ProcessGroupGloo's inline setTimeout, which the bridge never calls.
class Context {
 public:
  void setTimeout(std::chrono::milliseconds timeout);
};

}  // namespace gloo
