// Declarations only (see ../../README.md): both types are only held by pointer.
#pragma once

namespace gloo {
namespace transport {

class Device;
class UnboundBuffer;

}  // namespace transport
}  // namespace gloo
