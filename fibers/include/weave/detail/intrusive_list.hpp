#pragma once
// Intrusive doubly-linked list: the wait queues of every suspending primitive. A node knows
// whether it is linked, so a woken-by-cancellation waiter can unlink itself in O(1).

#include <cstddef>

namespace weave::detail {

struct ListNode {
  ListNode* prev = nullptr;
  ListNode* next = nullptr;
  bool linked() const noexcept { return next != nullptr; }
};

// Invariant: the list is circular through `head_`; an unlinked node has next == prev == nullptr.
class IntrusiveList {
 public:
  IntrusiveList() noexcept { head_.prev = head_.next = &head_; }
  IntrusiveList(const IntrusiveList&) = delete;
  IntrusiveList& operator=(const IntrusiveList&) = delete;

  bool empty() const noexcept { return head_.next == &head_; }
  std::size_t size() const noexcept { return size_; }

  void push_back(ListNode* n) noexcept {
    n->prev = head_.prev;
    n->next = &head_;
    head_.prev->next = n;
    head_.prev = n;
    ++size_;
  }

  void push_front(ListNode* n) noexcept {
    n->next = head_.next;
    n->prev = &head_;
    head_.next->prev = n;
    head_.next = n;
    ++size_;
  }

  ListNode* front() const noexcept { return empty() ? nullptr : head_.next; }

  ListNode* pop_front() noexcept {
    if (empty()) return nullptr;
    ListNode* n = head_.next;
    erase(n);
    return n;
  }

  void erase(ListNode* n) noexcept {
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = nullptr;
    --size_;
  }

  template <class F>
  void for_each(F&& f) const {
    for (ListNode* n = head_.next; n != &head_;) {
      ListNode* next = n->next;
      f(n);
      n = next;
    }
  }

 private:
  ListNode head_;
  std::size_t size_ = 0;
};

// A list hook as a tagged base class: an object that sits in several lists derives from one
// hook per list, and the hook converts back to the object with a static_cast.
template <class Tag>
struct Hook : ListNode {};

}  // namespace weave::detail
