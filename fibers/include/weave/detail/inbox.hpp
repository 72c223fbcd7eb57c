#pragma once
// The loop's multi-producer inbox: how other threads hand work to a loop.

#include <atomic>
#include <cstdint>
#include <thread>

#include "weave/detail/runnable.hpp"

namespace weave::detail {

/// Lock-free MPSC stack of runnables plus an eventfd to wake the loop. Reference-counted and
/// separate from the Loop, so a foreign thread that posts after the loop was destroyed gets a
/// clean "closed" answer instead of touching freed memory.
class Inbox {
 public:
  Inbox();
  Inbox(const Inbox&) = delete;
  Inbox& operator=(const Inbox&) = delete;

  /// Pushes `r` and wakes the loop if the inbox was empty. Returns false if the inbox is closed
  /// (the item is then left to the caller). Any thread.
  bool post(Runnable* r) noexcept;
  /// Takes every posted item in posting order. Owner thread.
  Runnable* take_all() noexcept;
  /// Refuses further posts and returns what was still queued, in posting order. Owner thread.
  Runnable* close() noexcept;
  bool closed() const noexcept;
  /// True if posts are waiting. Any thread.
  bool has_items() const noexcept;
  /// A cheap look for the loop's fast path: false means nothing was posted (as far as this
  /// thread can see yet); true may also mean "closed".
  bool maybe_has_items() const noexcept { return head_.load(std::memory_order_relaxed) != nullptr; }
  /// Clears the eventfd after a wake-up. Owner thread.
  void drain_wakeups() noexcept;
  int event_fd() const noexcept { return event_fd_; }
  bool owned_by_this_thread() const noexcept { return owner_ == std::this_thread::get_id(); }

  void retain() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept;

 private:
  ~Inbox();
  static Runnable* reverse(Runnable* r) noexcept;

  std::atomic<Runnable*> head_{nullptr};
  std::atomic<std::uint32_t> refs_{1};
  int event_fd_ = -1;
  std::thread::id owner_;
};

}  // namespace weave::detail
