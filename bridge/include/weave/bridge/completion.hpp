#pragma once
// weave::bridge::Completion: the callback handed to a callback-style API in place of the
// hand-written one. Calling it (on any thread) resumes the fiber that waits for it.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <future>
#include <new>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <utility>

#include "weave/errors.hpp"
#include "weave/loop.hpp"

namespace boost::system {
class error_code;
}

namespace weave::bridge {

template <class Signature>
class Completion;

namespace detail {

// ---- What a callback's arguments mean ---------------------------------------------------------
//
// A callback's first parameter may carry the error: an error code (std:: or Boost's) or an
// exception_ptr. The other parameters are the result: none (void), one (that value), or several
// (a std::tuple).

template <class T>
inline constexpr bool is_error_code_v =
    std::is_same_v<T, std::error_code> || std::is_same_v<T, boost::system::error_code>;

enum class ErrorSlot { none, error_code, exception_ptr };

template <class... Ts>
struct Shape {
  static constexpr ErrorSlot error = ErrorSlot::none;
  using values = std::tuple<Ts...>;
};
template <class First, class... Rest>
struct Shape<First, Rest...> {
  static constexpr ErrorSlot error = is_error_code_v<First> ? ErrorSlot::error_code
                                     : std::is_same_v<First, std::exception_ptr>
                                         ? ErrorSlot::exception_ptr
                                         : ErrorSlot::none;
  using values =
      std::conditional_t<error == ErrorSlot::none, std::tuple<First, Rest...>, std::tuple<Rest...>>;
};

template <class Tuple>
struct ResultOf;
template <>
struct ResultOf<std::tuple<>> {
  using type = void;
};
template <class T>
struct ResultOf<std::tuple<T>> {
  using type = T;
};
template <class T, class U, class... V>
struct ResultOf<std::tuple<T, U, V...>> {
  using type = std::tuple<T, U, V...>;
};

/// What a fiber gets back from a callback whose parameters are `Ts...` (already decayed).
template <class... Ts>
using result_t = typename ResultOf<typename Shape<Ts...>::values>::type;

// Converts any error code to std::error_code (Boost's converts implicitly, keeping equality).
template <class E>
std::error_code to_std(const E& e) {
  return static_cast<std::error_code>(e);
}
// Stores an error code into the caller's: as it is when the types match (a Boost code keeps its
// Boost category, so comparisons with asio::error values hold), converted otherwise.
template <class Out, class In>
void assign_error(Out& out, const In& in) {
  if constexpr (std::is_same_v<Out, In>)
    out = in;
  else
    out = Out(to_std(in));
}

// ---- The state shared by the waiting fiber and the completion handles ---------------------------
//
// Status: Pending -> Setting (a completer won) -> Ready, or Pending -> Abandoned (the waiter was
// cancelled first; every later completion is a no-op). Exactly one CAS out of Pending succeeds.
enum class Status : std::uint8_t { Pending, Setting, Ready, Abandoned };

// States are made and freed once per bridged call: a small per-thread cache of blocks (in size
// classes of 64 bytes) keeps malloc off the fast path. A block freed on another thread (the last
// handle went there) joins that thread's cache; every block comes from ::operator new.
void* allocate_state(std::size_t size);
void free_state(void* p, std::size_t size) noexcept;

class StateBase : public weave::detail::Runnable {
 public:
  StateBase(const StateBase&) = delete;
  StateBase& operator=(const StateBase&) = delete;

  static void* operator new(std::size_t size) { return allocate_state(size); }
  static void operator delete(void* p, std::size_t size) noexcept { free_state(p, size); }

  void retain() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  void add_handle() noexcept { handles_.fetch_add(1, std::memory_order_relaxed); }
  /// A handle went. The last one, if the state was never completed through any of them, breaks
  /// the promise: the waiter gets std::future_error(broken_promise) instead of hanging.
  void drop_handle() noexcept;

  /// Marks the state as called. Throws std::logic_error on a second call (through any copy).
  void claim() {
    if (called_.exchange(true, std::memory_order_acq_rel)) [[unlikely]]
      called_twice();
  }
  /// Claims the right to write the outcome; false if the waiter abandoned the wait (or the
  /// state was broken already). Any thread.
  bool begin_complete() noexcept {
    auto expected = Status::Pending;
    return status_.compare_exchange_strong(expected, Status::Setting, std::memory_order_acq_rel);
  }
  /// Publishes the outcome written after begin_complete() and resumes the waiter: directly on
  /// the loop's thread, through the loop's inbox from any other thread.
  void end_complete() noexcept;
  /// Completes with an exception (for Completion::fail and a throwing value constructor).
  void complete_with(std::exception_ptr e, bool broken = false) noexcept;

  /// For a handle that is never copied (weave::use_fiber's Asio handler, move-only): it holds
  /// the handles' reference itself, so neither the handle count nor the called flag is needed.
  /// Destroyed uncalled, it breaks the promise and gives the reference back.
  void drop_unique_handle() noexcept {
    if (begin_complete())
      complete_with(std::make_exception_ptr(std::future_error(std::future_errc::broken_promise)),
                    /*broken=*/true);
    release();
  }

  /// Throws the std::logic_error of a second call.
  [[noreturn]] static void called_twice();

  /// Gives up on the outcome (the initiating call threw): later completions are no-ops.
  void abandon() noexcept {
    auto expected = Status::Pending;
    status_.compare_exchange_strong(expected, Status::Abandoned, std::memory_order_acq_rel);
  }

  bool ready() const noexcept { return status_.load(std::memory_order_acquire) == Status::Ready; }
  /// True if wait() asked the operation to stop (the on_cancel policy). The loop's thread.
  bool cancel_asked() const noexcept { return cancel_asked_; }

  /// Suspends `self` until the outcome is ready. Cancellation (see the two policies below).
  void wait(weave::detail::TaskBase* self, SourceLocation where);

  /// After wait(): true if the outcome is an exception (fail(), a broken promise, a throwing
  /// value constructor) rather than the callback's arguments.
  bool has_outcome_error() const noexcept { return error_ != nullptr; }
  /// After wait(): rethrows a stored exception (the throwing form). The exception moves out:
  /// the fiber's side owns it from here, and a handle that a completing thread still holds does
  /// not destroy it there when it lets go of the state.
  void rethrow_if_failed() {
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
  }
  /// After wait(), for the error_code form: a broken promise becomes an error code; any other
  /// stored exception is rethrown. Returns true if there was an error.
  template <class E>
  bool error_into(E& ec) {
    if (!error_) return false;
    if (broken_) {
      ec = E(std::make_error_code(std::future_errc::broken_promise));
      return true;
    }
    rethrow_if_failed();
    return true;  // not reached
  }

 protected:
  /// `on_cancel`: nullptr to abandon the wait at once when the waiter is cancelled (a late
  /// completion is then a no-op); otherwise it is called once, on the loop's thread, to ask the
  /// operation to stop, and the waiter keeps waiting for the outcome (Asio's per-operation
  /// cancellation: the operation may be using buffers in the fiber's frame).
  StateBase(Loop& loop, void (*on_cancel)(StateBase*) = nullptr);
  // Virtual: release() deletes through this base, and the typed state owns the outcome (and,
  // for Asio, the cancellation signal); the sized operator delete then gets the real size too.
  virtual ~StateBase();

  /// Completions through this state come from the top of an outer loop's callback (an Asio
  /// handler), so an embedded loop may run its turn right there (Embedder::run_turn_now)
  /// instead of posting one: one handler per operation instead of two.
  void set_top_level_completion() noexcept { top_level_ = true; }

 private:
  static void on_posted(weave::detail::Runnable* r, bool run);
  void resume_waiter() noexcept;  // the loop's thread

  // One reference for the waiter, one for all the handles together, one per posted wake-up.
  std::atomic<std::uint32_t> refs_{2};
  std::atomic<std::uint32_t> handles_{1};
  std::atomic<bool> called_{false};
  std::atomic<Status> status_{Status::Pending};
  bool broken_ = false;  // written before Ready, read after
  std::exception_ptr error_;
  Loop* loop_;
  weave::detail::Inbox* inbox_;  // kept alive for completions that come after the loop is gone
  void (*on_cancel_)(StateBase*);
  // The loop's thread only:
  weave::detail::TaskBase* waiter_ = nullptr;
  bool waiting_ = false;       // the waiter is parked in wait(): a wake-up is for it
  bool cancel_asked_ = false;  // on_cancel_ was called
  bool top_level_ = false;     // see set_top_level_completion()
};

template <class... Ts>
class State : public StateBase {
 public:
  explicit State(Loop& loop, void (*on_cancel)(StateBase*) = nullptr)
      : StateBase(loop, on_cancel) {}

  template <class... A>
  void complete(A&&... args) {
    claim();
    if (!begin_complete()) return;  // the waiter is gone: a late completion is a no-op
    if (std::exception_ptr failed = store(std::forward<A>(args)...))
      complete_with(std::move(failed));
    else
      end_complete();
  }

  /// The call of a handle that is never copied (see drop_unique_handle): completes and gives the
  /// handles' reference back. The state may be gone when this returns.
  template <class... A>
  void complete_unique(A&&... args) {
    if (begin_complete()) {
      if (std::exception_ptr failed = store(std::forward<A>(args)...))
        complete_with(std::move(failed));
      else
        end_complete();
    }
    release();
  }

  /// The callback's arguments, after wait() and when no exception was stored.
  std::tuple<Ts...>& args() noexcept { return *value_; }

 private:
  // Stores the arguments; what their copy or move threw, if anything. The completion is
  // published after the handler is left: a completing thread then holds no count of the
  // exception once the waiter can see it.
  template <class... A>
  std::exception_ptr store(A&&... args) noexcept {
    try {
      value_.emplace(std::forward<A>(args)...);
      return nullptr;
    } catch (...) {
      return std::current_exception();
    }
  }

  std::optional<std::tuple<Ts...>> value_;
};

// The values after the error slot, as the result: nothing, one value, or a tuple.
template <class R, std::size_t Skip, class Tuple, std::size_t... I>
R take_values(Tuple& args, std::index_sequence<I...>) {
  if constexpr (std::is_void_v<R>)
    return;
  else if constexpr (sizeof...(I) == 1)
    return std::move(std::get<Skip + I>(args)...);
  else
    return R(std::move(std::get<Skip + I>(args))...);
}

/// Turns the arguments of a completed callback into the fiber's result (throwing form).
template <class... Ts>
result_t<Ts...> take_result(State<Ts...>& s) {
  s.rethrow_if_failed();
  using S = Shape<Ts...>;
  auto& args = s.args();
  if constexpr (S::error == ErrorSlot::error_code) {
    if (const auto& ec = std::get<0>(args)) throw std::system_error(to_std(ec));
  } else if constexpr (S::error == ErrorSlot::exception_ptr) {
    if (std::get<0>(args)) std::rethrow_exception(std::exchange(std::get<0>(args), nullptr));
  }
  constexpr std::size_t skip = S::error == ErrorSlot::none ? 0 : 1;
  return take_values<result_t<Ts...>, skip>(args, std::make_index_sequence<sizeof...(Ts) - skip>{});
}

/// The error_code form: an error code from the callback (or a broken promise) goes into `ec`
/// instead of being thrown; the values are returned as the callback gave them (value-initialised
/// when the callback never came; a result that cannot be value-initialised makes a broken
/// promise throw after all).
template <class E, class... Ts>
result_t<Ts...> take_result(State<Ts...>& s, E& ec) {
  using R = result_t<Ts...>;
  ec = E();
  if (s.error_into(ec)) {
    if constexpr (std::is_void_v<R>)
      return;
    else if constexpr (std::is_default_constructible_v<R>)
      return R{};
    else
      s.rethrow_if_failed();  // no value to return (an Asio socket, say): the error is thrown
  }
  using S = Shape<Ts...>;
  auto& args = s.args();
  if constexpr (S::error == ErrorSlot::error_code) {
    assign_error(ec, std::get<0>(args));
  } else if constexpr (S::error == ErrorSlot::exception_ptr) {
    if (std::get<0>(args)) std::rethrow_exception(std::exchange(std::get<0>(args), nullptr));
  }
  constexpr std::size_t skip = S::error == ErrorSlot::none ? 0 : 1;
  return take_values<result_t<Ts...>, skip>(args, std::make_index_sequence<sizeof...(Ts) - skip>{});
}

// Waits for `s` and releases the waiter's reference on every path out.
struct WaiterRef {
  StateBase* s;
  ~WaiterRef() { s->release(); }
};

}  // namespace detail

/// A one-shot callback that resumes a waiting fiber: what weave::bridge::call() hands to a
/// callback-style API in place of a hand-written callback, and what the Asio token
/// weave::use_fiber becomes. Its signature is the callback's, e.g. `Completion<void(int)>` or
/// `Completion<void(std::error_code, std::string)>`.
///
/// The contract, whatever the API does with it:
/// - **Any thread.** Called on the loop's thread it wakes the fiber directly; called inside the
///   initiating call (before the fiber suspended) the fiber does not suspend at all; called on
///   any other thread it posts the wake-up to the fiber's loop, which costs no allocation.
/// - **Once.** A second call (through any copy) throws std::logic_error; the first call's
///   outcome stands.
/// - **Late calls are no-ops.** If the waiting fiber was cancelled (or its timeout expired)
///   first, a later call does nothing and the arguments are dropped; nothing dangles.
/// - **A dropped handle breaks the promise.** If every copy is destroyed without a call, the
///   waiter gets std::future_error(broken_promise) instead of waiting forever.
/// - **Copyable**, so it fits APIs that take std::function; copies share one state.
///
/// @par Thread safety
/// Calling, copying and destroying copies are safe from any thread, concurrently.
template <class... Ts>
class Completion<void(Ts...)> {
 public:
  using state_type = detail::State<std::remove_cvref_t<Ts>...>;

  /// An empty handle (valid() is false).
  Completion() noexcept = default;
  explicit Completion(state_type* s) noexcept : s_(s) {}
  Completion(const Completion& o) noexcept : s_(o.s_) {
    if (s_) s_->add_handle();
  }
  Completion(Completion&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  Completion& operator=(Completion o) noexcept {
    std::swap(s_, o.s_);
    return *this;
  }
  ~Completion() {
    if (s_) s_->drop_handle();
  }

  /// Completes the wait with the callback's arguments.
  /// @par Errors
  /// std::logic_error if this completion was already called (through any copy), or if the
  /// handle is empty (moved from).
  void operator()(Ts... args) const {
    if (!s_) [[unlikely]]
      throw std::logic_error("weave::bridge: an empty (moved-from) completion handle was called");
    s_->complete(std::forward<Ts>(args)...);
  }

  /// Completes the wait with an exception, which the waiting fiber rethrows (for APIs that
  /// report errors outside the callback's arguments). Same rules as a call.
  void fail(std::exception_ptr e) const {
    if (!s_) [[unlikely]]
      throw std::logic_error("weave::bridge: an empty (moved-from) completion handle was called");
    s_->claim();
    if (s_->begin_complete()) s_->complete_with(std::move(e));
  }

  bool valid() const noexcept { return s_ != nullptr; }
  explicit operator bool() const noexcept { return valid(); }

  /// Gives the handle up as an opaque pointer, for C APIs that take a `void* user_data` with a
  /// plain function pointer; from_raw() takes it back. Until then it counts as a live handle.
  void* into_raw() && noexcept { return std::exchange(s_, nullptr); }
  /// Takes back a handle given up by into_raw(); call it exactly once per into_raw().
  static Completion from_raw(void* raw) noexcept {
    return Completion(static_cast<state_type*>(raw));
  }

 private:
  state_type* s_ = nullptr;
};

}  // namespace weave::bridge
