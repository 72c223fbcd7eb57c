#pragma once
// What a loop's epoll set points at: each registered fd's epoll data is an IoSource, and the
// loop calls its on_io with the events epoll reported. on_io runs inside the loop's poll, so it
// must only record readiness and schedule work (wake fibers, queue runnables): running user
// code there could free another source whose event is later in the same batch.

#include <cstdint>

namespace weave::detail {

struct IoSource {
  void (*on_io)(IoSource* self, std::uint32_t events) noexcept = nullptr;
};

}  // namespace weave::detail
