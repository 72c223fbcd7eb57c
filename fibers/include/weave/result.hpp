#pragma once
// weave::Result<T>: the outcome of a finished task as a value (a value, an exception, or a
// cancellation), for gather(weave::return_exceptions, ...).

#include <exception>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <variant>

#include "weave/errors.hpp"
#include "weave/task.hpp"

namespace weave {

/// The outcome of a finished task, held as a value: a T, an exception, or a cancellation.
/// Result<void> holds no value when it succeeded. What gather(weave::return_exceptions, ...)
/// returns for each task (asyncio's `return_exceptions=True`).
///
/// @par Example
/// @code
/// auto [a, b] = weave::gather(weave::return_exceptions, fetch_a, fetch_b);
/// if (a) use(*a);                          // a value
/// else if (a.cancelled()) log("a was cancelled");
/// else log(a.exception());                 // an exception
/// int v = b.value();                       // the value, or rethrows what b ended with
/// @endcode
///
/// @par Thread safety
/// A plain value type.
template <class T>
class Result {
  using Stored = std::conditional_t<std::is_void_v<T>, std::monostate, T>;
  struct Error {
    std::exception_ptr e;
  };
  struct Cancel {};

 public:
  using value_type = T;

  /// A successful result (Result<void>: `Result<void>()`).
  Result() requires std::is_void_v<T> : v_(std::in_place_index<0>) {}
  template <class U = Stored>
  requires(!std::is_void_v<T> && std::is_constructible_v<Stored, U&&> &&
           !std::is_same_v<std::remove_cvref_t<U>, Result>) explicit Result(U&& value)
      : v_(std::in_place_index<0>, std::forward<U>(value)) {}

  /// A failed result; `e` must not be null.
  static Result failure(std::exception_ptr e) {
    if (!e) throw std::invalid_argument("weave::Result::failure: null exception_ptr");
    return Result(Error{std::move(e)});
  }
  /// A cancelled result.
  static Result cancellation() { return Result(Cancel{}); }
  /// The outcome of `task`, which must be done. A failed task's exception counts as retrieved.
  /// The value is copied (from an lvalue handle) or moved out of the task (from an rvalue one).
  template <class Handle>
  requires std::is_same_v<std::remove_cvref_t<Handle>, Task<T>>
  static Result from(Handle&& task) {
    if (!task.done()) throw std::logic_error("weave::Result::from: the task is not done");
    if (task.cancelled()) return cancellation();
    if (std::exception_ptr e = task.exception()) return failure(std::move(e));
    if constexpr (std::is_void_v<T>) {
      return Result();
    } else if constexpr (std::is_rvalue_reference_v<Handle&&>) {
      return Result(std::move(task.get()));
    } else {
      return Result(task.get());
    }
  }

  /// True if the task returned normally.
  bool has_value() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }
  /// True if the task threw an exception (not a cancellation).
  bool failed() const noexcept { return v_.index() == 1; }
  /// True if the task was cancelled.
  bool cancelled() const noexcept { return v_.index() == 2; }

  /// The task's exception; a weave::Cancelled for a cancelled result; null for a value.
  std::exception_ptr exception() const {
    if (failed()) return std::get<1>(v_).e;
    if (cancelled()) return std::make_exception_ptr(Cancelled{});
    return nullptr;
  }

  /// The value (nothing for Result<void>), or rethrows the exception, or throws
  /// weave::Cancelled for a cancelled result: what Task::get() would have done.
  decltype(auto) value() & {
    rethrow_if_not_value();
    if constexpr (!std::is_void_v<T>) return std::get<0>(v_);
  }
  decltype(auto) value() const& {
    rethrow_if_not_value();
    if constexpr (!std::is_void_v<T>) return std::get<0>(v_);
  }
  decltype(auto) value() && {
    rethrow_if_not_value();
    if constexpr (!std::is_void_v<T>) return std::move(std::get<0>(v_));
  }

  /// The value; the result must hold one.
  Stored& operator*() & noexcept { return std::get<0>(v_); }
  const Stored& operator*() const& noexcept { return std::get<0>(v_); }
  Stored* operator->() noexcept { return &std::get<0>(v_); }
  const Stored* operator->() const noexcept { return &std::get<0>(v_); }

 private:
  explicit Result(Error e) : v_(std::in_place_index<1>, std::move(e)) {}
  explicit Result(Cancel c) : v_(std::in_place_index<2>, c) {}
  void rethrow_if_not_value() const {
    if (failed()) std::rethrow_exception(std::get<1>(v_).e);
    if (cancelled()) throw Cancelled{};
  }

  std::variant<Stored, Error, Cancel> v_;
};

}  // namespace weave
