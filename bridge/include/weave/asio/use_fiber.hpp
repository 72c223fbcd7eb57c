#pragma once
// weave::use_fiber: the Boost.Asio completion token that suspends the calling weave fiber until
// the operation completes, and returns its result.

#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/query.hpp>
#include <boost/system/error_code.hpp>
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

// The completion state of one operation, with its cancellation signal and the executor on
// which that signal may be emitted (void: none known, emit directly).
template <class Executor, class... Ts>
class OpState final : public bridge::detail::State<Ts...> {
 public:
  OpState(Loop& loop, Executor ex)
      : bridge::detail::State<Ts...>(loop, &on_cancel), ex_(std::move(ex)) {
    // Asio calls handlers only from the top of its run loop, never inside an initiating call.
    this->set_top_level_completion();
  }
  boost::asio::cancellation_signal signal;

 private:
  static void on_cancel(bridge::detail::StateBase* b) {
    auto* s = static_cast<OpState*>(b);
    if (runs_here(s->ex_)) {
      s->signal.emit(kCancelAll);
      return;
    }
    // The operation belongs to an io_context run by another thread: a cancellation slot may only
    // be used where its operation runs, so the emit is posted there.
    boost::asio::post(
        s->ex_, [ref = StateRef(s)] { static_cast<OpState*>(ref.s)->signal.emit(kCancelAll); });
  }
  Executor ex_;
};

template <class... Ts>
class OpState<void, Ts...> final : public bridge::detail::State<Ts...> {
 public:
  explicit OpState(Loop& loop) : bridge::detail::State<Ts...>(loop, &on_cancel) {
    this->set_top_level_completion();
  }
  boost::asio::cancellation_signal signal;

 private:
  static void on_cancel(bridge::detail::StateBase* b) {
    static_cast<OpState*>(b)->signal.emit(kCancelAll);
  }
};

// The handler Asio stores and calls: a Completion plus the operation's cancellation slot.
template <class... Ts>
class Handler {
 public:
  using cancellation_slot_type = boost::asio::cancellation_slot;

  Handler(bridge::Completion<void(Ts...)> done, boost::asio::cancellation_signal* signal) noexcept
      : done_(std::move(done)), signal_(signal) {}

  cancellation_slot_type get_cancellation_slot() const noexcept { return signal_->slot(); }

  void operator()(Ts... args) { done_(std::forward<Ts>(args)...); }

 private:
  bridge::Completion<void(Ts...)> done_;
  boost::asio::cancellation_signal* signal_;  // in the state, which done_ keeps alive
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
  if constexpr (std::is_same_v<Ex, int>)
    state = new State(*self->loop);
  else
    state = new State(*self->loop, init.get_executor());
  bridge::detail::WaiterRef ref{state};
  try {
    std::forward<Initiation>(init)(
        Handler<Ts...>(bridge::Completion<void(Ts...)>(state), &state->signal),
        std::forward<Args>(args)...);
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
