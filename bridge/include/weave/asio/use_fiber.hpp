#pragma once
// weave::use_fiber: the Boost.Asio completion token that suspends the calling weave fiber until
// the operation completes, and returns its result.

#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/query.hpp>
#include <boost/system/error_code.hpp>
#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

#include "weave/bridge/completion.hpp"
#include "weave/loop.hpp"

namespace weave {

/// The completion token that makes an Asio operation a plain call in a weave fiber:
/// `std::size_t n = sock.async_read_some(buf, weave::use_fiber);` suspends the calling fiber
/// (not the thread, not the loop) until the operation completes, and returns what the handler
/// would have received, without the error code: nothing, one value, or a std::tuple of several.
///
/// - `use_fiber` throws std::system_error for an error code (a std::error_code that compares
///   equal to the Asio one).
/// - `use_fiber[ec]` stores the error code in `ec` instead and never throws for it, as Asio's
///   `ec` overloads do.
///
/// The operation's handler may run on any thread: in an io_context run by the loop's own
/// thread through weave::AsioDriver, or in an io_context run by other threads (the wake-up is
/// then posted to the fiber's loop).
///
/// @par Cancellation
/// A checkpoint before the operation starts. Cancelling the fiber while it waits (Task::cancel,
/// a fail_after/move_on_after deadline) emits a cancellation on the operation's per-operation
/// cancellation slot (on the operation's own executor), then waits for the operation to finish
/// with its handler: the operation may be using buffers in the fiber's frame, so the fiber
/// never leaves while Asio could still touch them. If the operation stopped (operation_aborted),
/// `use_fiber` throws weave::Cancelled (a deadline then reports TimeoutError) while
/// `use_fiber[ec]` returns with ec == operation_aborted and the values the handler gave (the
/// bytes a composed operation did transfer); the cancellation is then delivered at the fiber's
/// next checkpoint. If it completed first, its result is returned and nothing is lost; the
/// cancellation is delivered at the next checkpoint. An operation that ignores per-operation
/// cancellation is waited for until it completes (close or cancel the I/O object to hurry it).
///
/// @par Errors
/// std::system_error for an operation's error (not with `[ec]`); std::future_error
/// (broken_promise) if Asio destroyed the handler without calling it (the io_context was
/// destroyed with the operation pending); std::logic_error outside a weave fiber.
class use_fiber_t {
 public:
  constexpr use_fiber_t() noexcept = default;
  /// The error-code form: `sock.async_read_some(buf, weave::use_fiber[ec])`.
  constexpr use_fiber_t operator[](boost::system::error_code& ec) const noexcept {
    return use_fiber_t(&ec);
  }
  /// Where the error-code form stores the error; nullptr for the throwing form.
  constexpr boost::system::error_code* error_code() const noexcept { return ec_; }

 private:
  constexpr explicit use_fiber_t(boost::system::error_code* ec) noexcept : ec_(ec) {}
  boost::system::error_code* ec_ = nullptr;
};

/// The token: `async_op(args..., weave::use_fiber)`; see use_fiber_t.
inline constexpr use_fiber_t use_fiber{};

namespace asio_detail {

// Every kind of cancellation the operation supports: an operation looks for the kinds it can
// do in this mask, and the weakest kind it finds is still a cancellation we can live with, since
// the fiber waits for the handler, which reports what happened.
inline constexpr boost::asio::cancellation_type_t kCancelAll =
    boost::asio::cancellation_type::terminal | boost::asio::cancellation_type::partial |
    boost::asio::cancellation_type::total;

// True if the caller runs inside `ex`'s execution context on this thread, so that the
// operation's cancellation slot may be used directly.
template <class Executor>
bool runs_here(const Executor& ex) {
  if constexpr (requires { ex.running_in_this_thread(); }) {
    return ex.running_in_this_thread();
  } else if constexpr (requires { ex.template target<boost::asio::io_context::executor_type>(); }) {
    // A type-erased executor (any_io_executor, what I/O objects use by default).
    const auto* io = ex.template target<boost::asio::io_context::executor_type>();
    return io && io->running_in_this_thread();
  } else {
    return false;
  }
}

// Keeps a state alive in a handler posted to Asio, and lets it go even if Asio drops the
// handler unrun.
struct StateRef {
  explicit StateRef(bridge::detail::StateBase* s) noexcept : s(s) { s->retain(); }
  StateRef(StateRef&& o) noexcept : s(std::exchange(o.s, nullptr)) {}
  StateRef(const StateRef&) = delete;
  ~StateRef() {
    if (s) s->release();
  }
  bridge::detail::StateBase* s;
};

// ---- The operation's cancellation slot ---------------------------------------------------------
//
// Asio's own cancellation_signal allocates the handler an operation installs in its slot (and
// frees it with the signal): an allocation and a free per operation, for a cancellation that
// almost never comes. The slot type is the handler's to choose (Asio's CancellationSlot
// requirements: is_connected, has_handler, assign, emplace, clear, ==), so use_fiber brings its
// own: the operation's cancellation handler (two to four pointers for Asio's operations, a
// signal and a state for a composed one) is built inside the operation's state, which exists
// anyway. A larger one goes to the heap.
//
// Like Asio's, the store is not thread-safe: it is used only where the operation runs (the slot
// is filled during the initiation, and emitted on the operation's executor).
class CancelStore {
 public:
  CancelStore() noexcept = default;
  CancelStore(const CancelStore&) = delete;
  CancelStore& operator=(const CancelStore&) = delete;
  ~CancelStore() { clear(); }

  template <class H, class... A>
  H& emplace(A&&... args) {
    clear();  // first: a throwing constructor leaves the store empty, not half-built
    H* h;
    if constexpr (sizeof(H) <= sizeof(buf_) && alignof(H) <= alignof(std::max_align_t)) {
      h = ::new (static_cast<void*>(buf_)) H(std::forward<A>(args)...);
      destroy_ = [](void* p) noexcept { static_cast<H*>(p)->~H(); };
    } else {
      h = new H(std::forward<A>(args)...);
      destroy_ = [](void* p) noexcept { delete static_cast<H*>(p); };
    }
    call_ = [](void* p, boost::asio::cancellation_type_t t) { (*static_cast<H*>(p))(t); };
    obj_ = h;
    return *h;
  }
  void clear() noexcept {
    if (void* h = std::exchange(obj_, nullptr)) destroy_(h);
  }
  bool has_handler() const noexcept { return obj_ != nullptr; }
  void emit(boost::asio::cancellation_type_t t) {
    if (obj_) call_(obj_, t);
  }

 private:
  alignas(std::max_align_t) unsigned char buf_[48];
  void* obj_ = nullptr;
  void (*call_)(void*, boost::asio::cancellation_type_t) = nullptr;
  void (*destroy_)(void*) noexcept = nullptr;
};

/// The cancellation slot of a use_fiber handler (Asio's CancellationSlot requirements).
class CancelSlot {
 public:
  /// A slot connected to nothing: operations see no cancellation support.
  CancelSlot() noexcept = default;
  explicit CancelSlot(CancelStore* store) noexcept : store_(store) {}
  bool is_connected() const noexcept { return store_ != nullptr; }
  bool has_handler() const noexcept { return store_ && store_->has_handler(); }
  /// Precondition (as for Asio's slot): is_connected().
  template <class H, class... A>
  H& emplace(A&&... args) {
    return store_->template emplace<H>(std::forward<A>(args)...);
  }
  template <class H>
  std::decay_t<H>& assign(H&& handler) {
    return emplace<std::decay_t<H>>(std::forward<H>(handler));
  }
  void clear() noexcept {
    if (store_) store_->clear();
  }
  friend bool operator==(const CancelSlot& a, const CancelSlot& b) noexcept {
    return a.store_ == b.store_;
  }
  friend bool operator!=(const CancelSlot& a, const CancelSlot& b) noexcept { return !(a == b); }

 private:
  CancelStore* store_ = nullptr;
};

// The completion state of one operation, with its cancellation handler and the executor on
// which a cancellation may be emitted (void: none known, emit directly).
//
// The executor is not copied into the state: it lives in run()'s frame, on the fiber's stack,
// and on_cancel is only ever called from inside run() (from wait()); the copy a posted emit
// needs is made then, on that rare path.
template <class Executor, class... Ts>
class OpState final : public bridge::detail::State<Ts...> {
 public:
  OpState(Loop& loop, const Executor* ex)
      : bridge::detail::State<Ts...>(loop, &on_cancel), ex_(ex) {
    // Asio calls handlers only from the top of its run loop, never inside an initiating call.
    this->set_top_level_completion();
  }
  CancelStore cancel;

 private:
  static void on_cancel(bridge::detail::StateBase* b) {
    auto* s = static_cast<OpState*>(b);
    if (runs_here(*s->ex_)) {
      s->cancel.emit(kCancelAll);
      return;
    }
    // The operation belongs to an io_context run by another thread: a cancellation slot may only
    // be used where its operation runs, so the emit is posted there.
    boost::asio::post(
        *s->ex_, [ref = StateRef(s)] { static_cast<OpState*>(ref.s)->cancel.emit(kCancelAll); });
  }
  const Executor* ex_;
};

template <class... Ts>
class OpState<void, Ts...> final : public bridge::detail::State<Ts...> {
 public:
  explicit OpState(Loop& loop) : bridge::detail::State<Ts...>(loop, &on_cancel) {
    this->set_top_level_completion();
  }
  CancelStore cancel;

 private:
  static void on_cancel(bridge::detail::StateBase* b) {
    static_cast<OpState*>(b)->cancel.emit(kCancelAll);
  }
};

// The handler Asio stores and calls. Move-only (Asio never copies a handler), so it is the one
// and only handle to its state: no handle count, no "called twice" flag. It holds the handles'
// reference to the state and gives it back when called (even before the call returns: the
// state may then be gone) or when destroyed uncalled (a broken promise for the waiter).
template <class State, class... Ts>
class Handler {
 public:
  using cancellation_slot_type = CancelSlot;

  explicit Handler(State* s) noexcept : s_(s) {}
  Handler(Handler&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  Handler(const Handler&) = delete;
  Handler& operator=(const Handler&) = delete;
  Handler& operator=(Handler&&) = delete;
  ~Handler() {
    if (s_) s_->drop_unique_handle();
  }

  cancellation_slot_type get_cancellation_slot() const noexcept {
    return s_ ? CancelSlot(&s_->cancel) : CancelSlot();
  }

  void operator()(Ts... args) {
    if (!s_) [[unlikely]]
      bridge::detail::StateBase::called_twice();
    std::exchange(s_, nullptr)->complete_unique(std::forward<Ts>(args)...);
  }

 private:
  State* s_;
};

template <class Initiation>
auto executor_of(const Initiation& init) {
  if constexpr (requires { init.get_executor(); })
    return init.get_executor();
  else
    return 0;  // no executor known
}

template <class... Ts, class Initiation, class... Args>
bridge::detail::result_t<std::remove_cvref_t<Ts>...> run(Initiation&& init, use_fiber_t token,
                                                         Args&&... args) {
  using weave::detail::LoopAccess;
  weave::detail::TaskBase* self = LoopAccess::require_fiber("weave::use_fiber");
  LoopAccess::checkpoint(self);
  using Ex = decltype(executor_of(init));
  using State =
      std::conditional_t<std::is_same_v<Ex, int>, OpState<void, std::remove_cvref_t<Ts>...>,
                         OpState<Ex, std::remove_cvref_t<Ts>...>>;
  State* state;
  // The operation's executor, for a cancellation (see OpState): here, not in the state.
  [[maybe_unused]] const Ex ex = executor_of(init);
  if constexpr (std::is_same_v<Ex, int>)
    state = new State(*self->loop);
  else
    state = new State(*self->loop, &ex);
  bridge::detail::WaiterRef ref{state};
  try {
    std::forward<Initiation>(init)(Handler<State, Ts...>(state), std::forward<Args>(args)...);
  } catch (...) {
    state->abandon();
    throw;
  }
  state->wait(self, SourceLocation::current());

  using S = bridge::detail::Shape<std::remove_cvref_t<Ts>...>;
  if constexpr (S::error == bridge::detail::ErrorSlot::error_code) {
    // Our own cancellation stopped the operation: for the throwing form that is the fiber's
    // cancellation (so that a deadline becomes TimeoutError), not an I/O error.
    if (state->cancel_asked() && !token.error_code() && !state->has_outcome_error() &&
        std::get<0>(state->args()) == boost::asio::error::operation_aborted &&
        LoopAccess::cancel_pending(self))
      LoopAccess::throw_cancelled(self);
  }
  if (boost::system::error_code* ec = token.error_code())
    return bridge::detail::take_result(*state, *ec);
  return bridge::detail::take_result(*state);
}

}  // namespace asio_detail
}  // namespace weave

namespace boost::asio {

/// Makes weave::use_fiber a completion token (see weave::use_fiber_t).
template <class... Ts>
class async_result<weave::use_fiber_t, void(Ts...)> {
 public:
  using return_type = weave::bridge::detail::result_t<std::remove_cvref_t<Ts>...>;

  template <class Initiation, class... Args>
  static return_type initiate(Initiation&& initiation, weave::use_fiber_t token, Args&&... args) {
    return weave::asio_detail::run<Ts...>(std::forward<Initiation>(initiation), token,
                                          std::forward<Args>(args)...);
  }
};

}  // namespace boost::asio
