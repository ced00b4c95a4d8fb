// NCCL process groups (c10d::ProcessGroupNCCL, exported by libtorch_cuda.so) for CUDA
// tensors. build.rs compiles this file only when it finds libtorch_cuda.so and the
// CUDA, CCCL and NCCL headers, and then sets the `slimbench_nccl` cfg; without it,
// src/dist.rs answers that this build has no NCCL. A group made here is an SbxGroup
// like Gloo's, so dist.cpp's collectives drive it through c10d::Backend's virtuals.
//
// Unlike ProcessGroupGloo.hpp, ProcessGroupNCCL.hpp is compiled whole, and the size of
// ProcessGroupNCCL and of its Options (allocated here, built by libtorch's exported
// constructors) follows from nccl.h's version through NCCLUtils.hpp's feature macros.
// build.rs therefore prefers the nccl.h of the nvidia-nccl wheel that torch pins, and
// the assertion below refuses one older than the newest feature libtorch 2.11 tests for.
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include <chrono>
#include <limits>
#include <stdexcept>
#include <string>

#include "dist.hpp"
#include "guarded.hpp"

#ifndef USE_C10D_NCCL
#error "build.rs defines USE_C10D_NCCL: ProcessGroupNCCL.hpp is empty without it"
#endif

static_assert(NCCL_VERSION_CODE >= NCCL_VERSION(2, 27, 0),
              "nccl.h is older than the NCCL libtorch was built with: ProcessGroupNCCL's layout "
              "would differ from libtorch's (use the nvidia-nccl wheel torch depends on)");

using sbx::guarded;

extern "C" {

// The number of CUDA devices this process sees (0 without a driver or a device).
int sbx_cuda_device_count() {
  return guarded([] { return static_cast<int>(c10::cuda::device_count()); }, 0);
}

// An NCCL process group of `size` ranks on `store`, this rank on cuda:`device`; returns
// once the communicator is up on every rank (eager initialisation, as
// init_process_group(device_id=...) does), or null on failure (no such device, a rank
// missing within the store's timeout, two ranks on one GPU, ...).
SbxGroup* sbx_nccl_new(SbxStore* s, size_t rank, size_t size, int64_t timeout_ms, int device) {
  return guarded(
      [&]() -> SbxGroup* {
        int devices = static_cast<int>(c10::cuda::device_count());
        if (devices == 0) throw std::runtime_error("no CUDA device is visible to this process");
        if (device < 0 || device >= devices) {
          throw std::invalid_argument("cuda:" + std::to_string(device) + " does not exist (this process sees " +
                                      std::to_string(devices) + " CUDA devices)");
        }
        if (size > static_cast<size_t>(std::numeric_limits<int>::max())) {
          throw std::invalid_argument("world size is too large");
        }
        std::chrono::milliseconds timeout(timeout_ms);
        auto opts = c10d::ProcessGroupNCCL::Options::create();
        opts->timeout = timeout;
        auto prefix = "slimbench/nccl/" + std::to_string(s->groups.fetch_add(1));
        auto store = c10::make_intrusive<c10d::PrefixStore>(prefix, s->store);
        auto group = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, static_cast<int>(rank),
                                                                 static_cast<int>(size), opts);
        at::Device cuda(at::kCUDA, static_cast<c10::DeviceIndex>(device));
        // Bound to one device: the barrier and the communicator use it, and connecting
        // now makes a missing peer an error here rather than in the first collective.
        group->setBoundDeviceId(cuda);
        group->eagerConnectSingleDevice(cuda);
        auto* out = new SbxGroup{group, timeout, device};
        return out;
      },
      (SbxGroup*)nullptr);
}

}  // extern "C"
