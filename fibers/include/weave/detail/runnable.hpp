#pragma once

namespace weave::detail {

/// An item of the loop's ready queue or of its cross-thread inbox: a fiber to resume, or a
/// callback to run. Intrusive, so queueing never allocates.
struct Runnable {
  Runnable* next_ready = nullptr;
  /// nullptr for fibers. Otherwise runs the item (run == true) or, when the loop closes before
  /// it could run, releases it (run == false).
  void (*invoke)(Runnable*, bool run) = nullptr;
  bool is_fiber() const noexcept { return invoke == nullptr; }
};

/// FIFO of runnables through their `next_ready` link.
class RunQueue {
 public:
  bool empty() const noexcept { return head_ == nullptr; }
  void push_back(Runnable* r) noexcept {
    r->next_ready = nullptr;
    if (tail_)
      tail_->next_ready = r;
    else
      head_ = r;
    tail_ = r;
  }
  void push_front(Runnable* r) noexcept {
    r->next_ready = head_;
    head_ = r;
    if (!tail_) tail_ = r;
  }
  Runnable* front() const noexcept { return head_; }
  Runnable* pop_front() noexcept {
    Runnable* r = head_;
    head_ = r->next_ready;
    if (!head_) tail_ = nullptr;
    r->next_ready = nullptr;
    return r;
  }

 private:
  Runnable* head_ = nullptr;
  Runnable* tail_ = nullptr;
};

}  // namespace weave::detail
