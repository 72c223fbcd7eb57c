#pragma once
// weave::bridge::call: a callback API as a plain call inside a fiber.

#include <functional>
#include <type_traits>
#include <utility>

#include "weave/bridge/completion.hpp"
#include "weave/loop.hpp"

namespace weave::bridge {

namespace detail {

// ---- Seeing a callable's parameters -----------------------------------------------------------

template <class... T>
struct TypeList {};

// The parameters of a callable that has exactly one signature: a function, a function pointer,
// a member function pointer (the object is not among them), or a class with one non-template
// operator() (a lambda, std::function). `known` is false for anything else (a generic lambda,
// an overload set wrapped in a lambda with `auto`).
template <class F, class = void>
struct Params {
  static constexpr bool known = false;
};
template <class R, class... A>
struct Params<R(A...)> {
  static constexpr bool known = true;
  using list = TypeList<A...>;
};
template <class R, class... A>
struct Params<R(A...) noexcept> : Params<R(A...)> {};
template <class R, class... A>
struct Params<R (*)(A...)> : Params<R(A...)> {};
template <class R, class... A>
struct Params<R (*)(A...) noexcept> : Params<R(A...)> {};
#define WEAVE_BRIDGE_MEMBER_PARAMS(QUALS)                   \
  template <class R, class C, class... A>                   \
  struct Params<R (C::*)(A...) QUALS> : Params<R(A...)> {}; \
  template <class R, class C, class... A>                   \
  struct Params<R (C::*)(A...) QUALS noexcept> : Params<R(A...)> {};
WEAVE_BRIDGE_MEMBER_PARAMS()
WEAVE_BRIDGE_MEMBER_PARAMS(const)
WEAVE_BRIDGE_MEMBER_PARAMS(&)
WEAVE_BRIDGE_MEMBER_PARAMS(const&)
WEAVE_BRIDGE_MEMBER_PARAMS(&&)
#undef WEAVE_BRIDGE_MEMBER_PARAMS
template <class F>
struct Params<F, std::void_t<decltype(&F::operator())>> : Params<decltype(&F::operator())> {};

template <class List>
struct Last;
template <class T>
struct Last<TypeList<T>> {
  using type = T;
};
template <class T, class U, class... V>
struct Last<TypeList<T, U, V...>> : Last<TypeList<U, V...>> {};

template <class L>
struct SignatureOf;
template <class... A>
struct SignatureOf<TypeList<A...>> {
  using type = void(A...);
};

// The signature of the callback an API takes as its last parameter, from the parameter's type.
template <class Cb, class = void>
struct CallbackSignature {
  static constexpr bool known = false;
};
template <class Sig>
struct CallbackSignature<Completion<Sig>> {
  static constexpr bool known = true;
  using type = Sig;
};
template <class Cb>
struct CallbackSignature<Cb, std::enable_if_t<std::is_class_v<Cb> && Params<Cb>::known>> {
  static constexpr bool known = true;
  using type = typename SignatureOf<typename Params<Cb>::list>::type;
};

template <class Api, bool = Params<std::remove_cvref_t<Api>>::known>
struct DeducedSignature {
  static constexpr bool known = false;
};
template <class Api>
struct DeducedSignature<Api, true> {
  using Cb =
      std::remove_cvref_t<typename Last<typename Params<std::remove_cvref_t<Api>>::list>::type>;
  static_assert(!std::is_pointer_v<Cb>,
                "weave::bridge::call: the API takes a plain function pointer as its callback, "
                "which cannot carry a completion; pass a lambda that gives the API a trampoline "
                "and Completion::into_raw() as its user data (see docs/migration.md)");
  static constexpr bool known = CallbackSignature<Cb>::known;
  using type = typename CallbackSignature<Cb>::type;
};

template <class Sig, class Api>
struct ChosenSignature {
  using type = Sig;
};
template <class Api>
struct ChosenSignature<void, Api> {
  static_assert(DeducedSignature<Api>::known,
                "weave::bridge::call cannot see the callback's signature (the API or its "
                "callback parameter is a template or overloaded); name it: "
                "bridge::call<void(int)>(api, args...)");
  using type = typename DeducedSignature<Api>::type;
};

template <class Sig>
struct SigTraits;
template <class... Ts>
struct SigTraits<void(Ts...)> {
  using completion = Completion<void(Ts...)>;
  using state = typename completion::state_type;
  using result = result_t<std::remove_cvref_t<Ts>...>;
};

// Starts the call with a fresh completion as the last argument and waits for its outcome;
// `take` turns the completed state into the result.
template <class Sig, class Take, class Api, class... Args>
decltype(auto) call_and_wait(const char* what, Take&& take, Api&& api, Args&&... args) {
  using T = SigTraits<Sig>;
  weave::detail::TaskBase* self = weave::detail::LoopAccess::require_fiber(what);
  weave::detail::LoopAccess::checkpoint(self);
  auto* state = new typename T::state(*self->loop);
  WaiterRef ref{state};
  try {
    std::invoke(std::forward<Api>(api), std::forward<Args>(args)..., typename T::completion(state));
  } catch (...) {
    state->abandon();  // the API failed; a copy of the handle it kept may still be called
    throw;
  }
  state->wait(self, SourceLocation::current());
  return take(*state);
}

}  // namespace detail

/// Calls a callback-style API from a fiber as if it were a plain function: `api(args...,
/// callback)` is called with a weave::bridge::Completion as the callback, and the calling fiber
/// suspends until the API calls it; the callback's arguments become the return value.
///
/// The callback's signature is read from `api`'s last parameter (a std::function, or any class
/// with one call operator) or given explicitly as `Signature`, as it must be when `api` is a
/// template or a generic lambda. That form also covers any callable that just wants a handle:
/// `bridge::call<void(int)>([&](auto done) { legacy.fetch(key, std::move(done)); })`.
///
/// What the callback's parameters become:
/// | callback                           | call() returns / throws                              |
/// |------------------------------------|------------------------------------------------------|
/// | `(T)`                              | `T`                                                  |
/// | `()`                               | `void`                                               |
/// | `(A, B, ...)`                      | `std::tuple<A, B, ...>`                              |
/// | `(error_code, T...)`               | the rest as above; throws std::system_error(ec)      |
/// | `(std::exception_ptr, T...)`       | the rest as above; rethrows the exception            |
/// (`error_code` is std::error_code or boost::system::error_code.)
///
/// @par Example
/// @code
/// void fetch_user(int id, std::function<void(std::error_code, User)> done);  // legacy
/// User u = weave::bridge::call(fetch_user, 42);  // inside a fiber
/// @endcode
/// @par Thread safety
/// The API may call the completion on any thread, or inside the call itself; see Completion.
/// @par Cancellation
/// A checkpoint, before the API is called and while waiting. A cancelled (or timed-out) waiter
/// throws weave::Cancelled at once; the API is not told, and its later call of the completion
/// is a no-op. An outcome that arrived before the fiber resumed is returned, and the
/// cancellation is delivered at the next checkpoint.
/// @par Errors
/// As in the table; std::future_error(broken_promise) if the API destroyed every copy of the
/// completion without calling it; whatever the API throws (the completion is then abandoned);
/// std::logic_error outside a fiber.
// (Deduced return types, not trailing ones: the signature's static_asserts must only fire for
// the overload that is chosen, never while the other is being considered.)
template <class Signature = void, class Api, class... Args>
requires(!detail::is_error_code_v<std::remove_cvref_t<Api>>) decltype(auto)
    call(Api&& api, Args&&... args) {
  using Sig = typename detail::ChosenSignature<Signature, Api>::type;
  return detail::call_and_wait<Sig>(
      "weave::bridge::call", [](auto& s) { return detail::take_result(s); }, std::forward<Api>(api),
      std::forward<Args>(args)...);
}

/// The same, reporting errors through `ec` instead of throwing, as Asio pairs its calls: an
/// error code from the callback (or a broken promise) is stored in `ec` and the values are
/// returned as the callback gave them. Exceptions (an exception_ptr from the callback, one from
/// the API itself) and Cancelled are still thrown.
template <class Signature = void, class ErrorCode, class Api, class... Args>
requires detail::is_error_code_v<ErrorCode>
decltype(auto) call(ErrorCode& ec, Api&& api, Args&&... args) {
  using Sig = typename detail::ChosenSignature<Signature, Api>::type;
  return detail::call_and_wait<Sig>(
      "weave::bridge::call", [&ec](auto& s) { return detail::take_result(s, ec); },
      std::forward<Api>(api), std::forward<Args>(args)...);
}

}  // namespace weave::bridge
