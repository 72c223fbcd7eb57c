#pragma once
// An indexed binary min-heap of timers. Each node knows its slot, so cancelling a timer removes
// it at once in O(log n): no tombstones pile up when timeouts are set and cancelled in a loop.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "weave/clock.hpp"

namespace weave::detail {

struct TimerNode {
  static constexpr std::size_t kNotQueued = static_cast<std::size_t>(-1);
  TimePoint deadline{};
  std::uint64_t seq = 0;  // ties on the deadline fire in the order they were armed
  std::size_t slot = kNotQueued;
  void (*fire)(TimerNode*) = nullptr;
  bool armed() const noexcept { return slot != kNotQueued; }
};

class TimerHeap {
 public:
  bool empty() const noexcept { return heap_.empty(); }
  std::size_t size() const noexcept { return heap_.size(); }
  TimerNode* top() const noexcept { return heap_.front(); }

  // The vector grows to the peak number of armed timers and is then reused: no allocation per
  // timer in the steady state.
  void push(TimerNode* n) {
    n->seq = next_seq_++;
    n->slot = heap_.size();
    heap_.push_back(n);
    sift_up(n->slot);
  }

  void erase(TimerNode* n) noexcept {
    std::size_t i = n->slot;
    n->slot = TimerNode::kNotQueued;
    TimerNode* last = heap_.back();
    heap_.pop_back();
    if (last == n) return;
    heap_[i] = last;
    last->slot = i;
    sift_down(i);
    sift_up(last->slot);
  }

  TimerNode* pop() noexcept {
    TimerNode* n = heap_.front();
    erase(n);
    return n;
  }

 private:
  static bool less(const TimerNode* a, const TimerNode* b) noexcept {
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
  }
  void place(std::size_t i, TimerNode* n) noexcept {
    heap_[i] = n;
    n->slot = i;
  }
  void sift_up(std::size_t i) noexcept {
    TimerNode* n = heap_[i];
    while (i > 0) {
      std::size_t parent = (i - 1) / 2;
      if (!less(n, heap_[parent])) break;
      place(i, heap_[parent]);
      i = parent;
    }
    place(i, n);
  }
  void sift_down(std::size_t i) noexcept {
    TimerNode* n = heap_[i];
    const std::size_t count = heap_.size();
    for (;;) {
      std::size_t child = 2 * i + 1;
      if (child >= count) break;
      if (child + 1 < count && less(heap_[child + 1], heap_[child])) ++child;
      if (!less(heap_[child], n)) break;
      place(i, heap_[child]);
      i = child;
    }
    place(i, n);
  }

  std::vector<TimerNode*> heap_;
  std::uint64_t next_seq_ = 0;
};

}  // namespace weave::detail
