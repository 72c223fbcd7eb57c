#pragma once
// Handles to scheduled callbacks (asyncio's Handle and TimerHandle).

#include <atomic>
#include <cstdint>

#include "weave/clock.hpp"
#include "weave/detail/inline_function.hpp"
#include "weave/detail/runnable.hpp"
#include "weave/detail/source_location.hpp"
#include "weave/detail/timer_heap.hpp"

namespace weave {

class Loop;

namespace detail {

// The timer part is armed only for call_later / call_at.
struct CallbackNode final : Runnable, TimerNode {
  enum : std::uint8_t { kPending, kRan, kCancelled };
  InlineFunction fn;
  Loop* loop = nullptr;
  SourceLocation where;  // where it was scheduled: names it in debug-mode warnings
  // One reference for the loop while the callback is queued or armed, one per Handle.
  std::atomic<std::uint32_t> refs{1};
  std::atomic<std::uint8_t> state{kPending};

  CallbackNode(Loop* l, InlineFunction f, SourceLocation where = {}) noexcept;
  static void invoke_node(Runnable* r, bool run);
  static void fire_timer(TimerNode* t);
};

inline void retain(CallbackNode* n) noexcept { n->refs.fetch_add(1, std::memory_order_relaxed); }
inline void release(CallbackNode* n) noexcept {
  if (n->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete n;
}

}  // namespace detail

/// A callback scheduled with call_soon, call_later, call_at or call_soon_threadsafe.
///
/// Dropping the handle does not cancel the callback.
class Handle {
 public:
  Handle() noexcept = default;
  explicit Handle(detail::CallbackNode* n) noexcept : node_(n) {
    if (node_) detail::retain(node_);
  }
  Handle(const Handle& o) noexcept : Handle(o.node_) {}
  Handle(Handle&& o) noexcept : node_(o.node_) { o.node_ = nullptr; }
  Handle& operator=(Handle o) noexcept {
    std::swap(node_, o.node_);
    return *this;
  }
  ~Handle() {
    if (node_) detail::release(node_);
  }

  /// Cancels the callback if it has not run yet; returns false if it had already run or been
  /// cancelled.
  ///
  /// @par Thread safety
  /// A timer handle (call_later/call_at) must be cancelled on its loop's thread, because the
  /// timer is removed from the loop's heap at once. Other handles may be cancelled from any
  /// thread.
  bool cancel() noexcept;
  /// True once cancel() has succeeded.
  bool cancelled() const noexcept {
    return node_ &&
           node_->state.load(std::memory_order_acquire) == detail::CallbackNode::kCancelled;
  }
  /// The deadline of a timer handle.
  TimePoint when() const noexcept { return node_ ? node_->deadline : TimePoint{}; }
  explicit operator bool() const noexcept { return node_ != nullptr; }

 private:
  detail::CallbackNode* node_ = nullptr;
};

}  // namespace weave
