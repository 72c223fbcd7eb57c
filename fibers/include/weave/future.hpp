#pragma once
// Future<T> / Promise<T>: a result that arrives later, from any thread (asyncio.Future).

#include <atomic>
#include <cstdint>
#include <exception>
#include <future>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "weave/errors.hpp"
#include "weave/loop.hpp"

namespace weave {

namespace detail {

// Pending -> Setting (one completer won the race and is writing) -> Ready.
enum class FutureStatus : std::uint8_t { Pending, Setting, Ready };

class FutureStateBase : public Runnable {
 public:
  explicit FutureStateBase(Loop& loop);
  FutureStateBase(const FutureStateBase&) = delete;
  FutureStateBase& operator=(const FutureStateBase&) = delete;
  virtual ~FutureStateBase();

  void retain() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  bool ready() const noexcept {
    return status_.load(std::memory_order_acquire) == FutureStatus::Ready;
  }
  /// Claims the right to complete. Exactly one caller ever gets true. Any thread.
  bool begin_complete() noexcept {
    auto expected = FutureStatus::Pending;
    return status_.compare_exchange_strong(expected, FutureStatus::Setting,
                                           std::memory_order_acq_rel);
  }
  /// Publishes the outcome written after begin_complete() and wakes the waiters: directly on
  /// the owner loop's thread, through the loop's inbox from any other thread.
  void end_complete(Outcome o, std::exception_ptr e = nullptr) noexcept;
  /// The same for a producer that holds a reference and is done with the state. From another
  /// thread that reference goes with the wake-up, so the producer's thread never drops the last
  /// one: the outcome is destroyed on the loop's thread. Returns true if it was taken (the
  /// caller must not touch the state again); on the loop's thread it stays with the caller.
  bool end_complete_handing_over(Outcome o, std::exception_ptr e = nullptr) noexcept;

  /// Waits (loop thread) until ready; see Future::wait().
  void wait(const char* what, SourceLocation where);
  void add_callback(InlineFunction fn);
  /// Rethrows the error or cancellation of a ready future; marks the error retrieved.
  void rethrow_if_failed();
  Outcome outcome() const noexcept { return outcome_; }
  Loop& loop() const noexcept { return *loop_; }

 private:
  static void on_posted(Runnable* r, bool run);
  void notify() noexcept;  // loop thread

  std::atomic<std::uint32_t> refs_{1};
  std::atomic<FutureStatus> status_{FutureStatus::Pending};
  Outcome outcome_ = Outcome::Pending;  // written by the completer before status_ = Ready
  std::exception_ptr error_;
  Loop* loop_;
  Inbox* inbox_;  // keeps the loop's inbox alive for completions from other threads
  // Owned by the loop's thread:
  IntrusiveList waiters_;
  RunQueue callbacks_;
  bool notified_ = false;
  bool retrieved_ = false;
};

template <class T>
class FutureState final : public FutureStateBase {
 public:
  using FutureStateBase::FutureStateBase;
  std::optional<T> value;
};
template <>
class FutureState<void> final : public FutureStateBase {
 public:
  using FutureStateBase::FutureStateBase;
};

}  // namespace detail

template <class T>
class Promise;

/// The consumer side of a result that arrives later. Copies share the same state.
///
/// @par Thread safety
/// Loop-affine: wait on a future only from its loop's thread (the loop current when its
/// Promise was made). The producer side, Promise, may complete from any thread.
template <class T>
class Future {
 public:
  Future() noexcept = default;
  Future(const Future& o) noexcept : s_(o.s_) {
    if (s_) s_->retain();
  }
  Future(Future&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  Future& operator=(Future o) noexcept {
    std::swap(s_, o.s_);
    return *this;
  }
  ~Future() {
    if (s_) s_->release();
  }

  /// True once a value, an exception or a cancellation is set.
  bool done() const noexcept { return s_->ready(); }
  /// True if the future was cancelled.
  bool cancelled() const noexcept {
    return s_->ready() && s_->outcome() == detail::Outcome::Cancelled;
  }

  /// Suspends the calling fiber until the future is done (outside any fiber: runs the loop).
  ///
  /// @par Cancellation
  /// A checkpoint: a cancelled waiter throws Cancelled and the future is not affected.
  void wait(SourceLocation where = SourceLocation::current()) const {
    s_->wait("Future::wait", where);
  }

  /// Waits, then returns the value or rethrows the exception (Cancelled if cancelled).
  decltype(auto) get(SourceLocation where = SourceLocation::current()) const {
    s_->wait("Future::get", where);
    s_->rethrow_if_failed();
    if constexpr (!std::is_void_v<T>) return static_cast<T&>(*state()->value);
  }

  /// Cancels the future if it is not done: waiters get Cancelled; a later set_value from the
  /// producer fails. Returns false if it was already done. Loop thread.
  bool cancel() noexcept {
    if (!s_->begin_complete()) return false;
    s_->end_complete(detail::Outcome::Cancelled);
    return true;
  }

  /// Calls `fn()` on the loop (via call_soon) once the future is done.
  template <class F>
  void add_done_callback(F&& fn) {
    s_->add_callback(detail::InlineFunction(std::forward<F>(fn)));
  }

  bool valid() const noexcept { return s_ != nullptr; }

 private:
  friend class Promise<T>;
  explicit Future(detail::FutureState<T>* s) noexcept : s_(s) { s_->retain(); }
  detail::FutureState<T>* state() const noexcept {
    return static_cast<detail::FutureState<T>*>(s_);
  }
  detail::FutureStateBase* s_ = nullptr;
};

/// The producer side of a Future.
///
/// A Promise belongs to the loop it was made on; completing it (set_value, set_exception) is
/// safe from any thread, and the waiters are woken on the loop. Destroying a promise that was
/// never completed completes it with std::future_error(broken_promise), so a waiter never
/// hangs on a producer that went away.
template <class T>
class Promise {
 public:
  /// A promise on the current loop (throws std::logic_error if this thread has none).
  Promise() : Promise(Loop::current()) {}
  explicit Promise(Loop& loop) : s_(new detail::FutureState<T>(loop)) {}
  Promise(Promise&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  Promise& operator=(Promise&& o) noexcept {
    if (this != &o) {
      abandon();
      s_ = std::exchange(o.s_, nullptr);
    }
    return *this;
  }
  Promise(const Promise&) = delete;
  Promise& operator=(const Promise&) = delete;
  ~Promise() { abandon(); }

  /// Throws std::future_error(no_state) if the promise is moved from, or was completed on
  /// another thread than its loop's (it handed its state over with the wake-up).
  Future<T> get_future() const {
    if (!s_) throw std::future_error(std::future_errc::no_state);
    return Future<T>(s_);
  }

  /// Sets the value. Throws std::future_error(promise_already_satisfied) if the future is
  /// already done (set before, or cancelled by its consumer). Any thread.
  template <class... A>
  void set_value(A&&... v) {
    if (!try_set_value(std::forward<A>(v)...))
      throw std::future_error(std::future_errc::promise_already_satisfied);
  }
  /// Like set_value, but returns false instead of throwing when the future is already done.
  template <class... A>
  bool try_set_value(A&&... v) {
    if (!s_ || !s_->begin_complete()) return false;
    if constexpr (!std::is_void_v<T>) {
      std::exception_ptr failed;
      try {
        s_->value.emplace(std::forward<A>(v)...);
      } catch (...) {
        failed = std::current_exception();
      }
      // Published outside the handler. The rethrow then gives this caller a count of its own
      // (set_value reports the failure to its caller as well as to the waiters).
      if (failed) {
        complete(detail::Outcome::Error, failed);
        std::rethrow_exception(std::move(failed));
      }
    }
    complete(detail::Outcome::Value, nullptr);
    return true;
  }
  /// Completes with an exception. Call it outside the catch block that caught it (keep
  /// std::current_exception() in a variable): a producer thread still inside the handler holds
  /// a count of the exception after the waiter may have seen it.
  void set_exception(std::exception_ptr e) {
    if (!try_set_exception(std::move(e)))
      throw std::future_error(std::future_errc::promise_already_satisfied);
  }
  bool try_set_exception(std::exception_ptr e) noexcept {
    if (!s_ || !s_->begin_complete()) return false;
    complete(detail::Outcome::Error, std::move(e));
    return true;
  }

 private:
  void complete(detail::Outcome o, std::exception_ptr e) noexcept {
    if (s_->end_complete_handing_over(o, std::move(e))) s_ = nullptr;
  }
  void abandon() noexcept {
    if (!s_) return;
    try_set_exception(std::make_exception_ptr(std::future_error(std::future_errc::broken_promise)));
    if (s_) std::exchange(s_, nullptr)->release();  // unless the completion took it
  }
  detail::FutureState<T>* s_;
};

}  // namespace weave
