#include "weave/bridge/embedder.hpp"

#include <stdexcept>

namespace weave::bridge {

namespace {
// Loops live on one thread, and so do their embedders: a per-thread list, no lock.
thread_local Embedder* tl_embedders = nullptr;
}  // namespace

Embedder::Embedder(Loop& loop) : loop_(&loop) {
  if (of(loop)) throw std::logic_error("weave::bridge: this loop already has an embedder");
  next_ = tl_embedders;
  tl_embedders = this;
  // Work made ready (or a timer armed) on the loop's thread while the loop is not running
  // comes from the outer loop's callbacks: ask for a turn, as notify() does.
  weave::detail::LoopAccess::set_outside_work_hook(
      loop, [](void* e) noexcept { static_cast<Embedder*>(e)->request_turn(); }, this);
}

Embedder::~Embedder() {
  weave::detail::LoopAccess::set_outside_work_hook(*loop_, nullptr, nullptr);
  for (Embedder** p = &tl_embedders; *p; p = &(*p)->next_) {
    if (*p == this) {
      *p = next_;
      return;
    }
  }
}

Embedder* Embedder::of(const Loop& loop) noexcept {
  for (Embedder* e = tl_embedders; e; e = e->next_)
    if (e->loop_ == &loop) return e;
  return nullptr;
}

void Embedder::notify(Loop& loop, bool top_level) noexcept {
  if (loop.is_running()) return;  // the running turn (or the next one) picks the work up
  if (Embedder* e = of(loop)) {
    if (top_level)
      e->run_turn_now();
    else
      e->request_turn();
  }
}

}  // namespace weave::bridge
