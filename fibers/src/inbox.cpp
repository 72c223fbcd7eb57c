#include "weave/detail/inbox.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <system_error>

namespace weave::detail {

namespace {
// Marks a closed inbox; never dereferenced.
Runnable* const kClosed = reinterpret_cast<Runnable*>(std::uintptr_t{1});
}  // namespace

Inbox::Inbox() : owner_(std::this_thread::get_id()) {
  event_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (event_fd_ < 0) throw std::system_error(errno, std::generic_category(), "weave: eventfd");
}

Inbox::~Inbox() { ::close(event_fd_); }

void Inbox::release() noexcept {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
}

bool Inbox::post(Runnable* r) noexcept {
  Runnable* head = head_.load(std::memory_order_relaxed);
  do {
    if (head == kClosed) return false;
    r->next_ready = head;
  } while (
      !head_.compare_exchange_weak(head, r, std::memory_order_release, std::memory_order_relaxed));
  // Only the post that makes the inbox non-empty wakes the loop: the loop takes everything at
  // once, so later posts of the same batch ride on the same wake-up.
  if (head == nullptr) {
    std::uint64_t one = 1;
    // EAGAIN means the counter is already non-zero: the loop will wake anyway.
    [[maybe_unused]] auto n = ::write(event_fd_, &one, sizeof one);
  }
  return true;
}

Runnable* Inbox::reverse(Runnable* r) noexcept {
  Runnable* out = nullptr;
  while (r) {
    Runnable* next = r->next_ready;
    r->next_ready = out;
    out = r;
    r = next;
  }
  return out;
}

Runnable* Inbox::take_all() noexcept {
  // The cheap check first: most turns find nothing posted.
  Runnable* head = head_.load(std::memory_order_relaxed);
  if (head == nullptr || head == kClosed) return nullptr;
  head = head_.exchange(nullptr, std::memory_order_acquire);
  return reverse(head);  // the stack holds the newest first; the loop wants posting order
}

Runnable* Inbox::close() noexcept {
  Runnable* head = head_.exchange(kClosed, std::memory_order_acq_rel);
  return head == kClosed ? nullptr : reverse(head);
}

bool Inbox::has_items() const noexcept {
  Runnable* head = head_.load(std::memory_order_acquire);
  return head != nullptr && head != kClosed;
}

bool Inbox::closed() const noexcept { return head_.load(std::memory_order_acquire) == kClosed; }

void Inbox::drain_wakeups() noexcept {
  std::uint64_t n;
  [[maybe_unused]] auto r = ::read(event_fd_, &n, sizeof n);
}

}  // namespace weave::detail
