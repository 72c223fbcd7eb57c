#pragma once
// weave::gather: wait for several tasks and collect their results (asyncio.gather).

#include <cstddef>
#include <cstdint>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "weave/detail/task_watch.hpp"
#include "weave/result.hpp"
#include "weave/task.hpp"

namespace weave {

/// Tag for gather: collect every outcome as a weave::Result instead of throwing the first
/// failure (asyncio's `return_exceptions=True`).
struct ReturnExceptions {
  explicit ReturnExceptions() = default;
};
inline constexpr ReturnExceptions return_exceptions{};

namespace detail {

template <class H>
struct task_traits : std::false_type {};
template <class T>
struct task_traits<Task<T>> : std::true_type {
  using value_type = T;
};
template <class H>
concept TaskHandle = task_traits<std::remove_cvref_t<H>>::value;
template <class H>
using task_value_t = typename task_traits<std::remove_cvref_t<H>>::value_type;

/// What gather returns for a task of T: T, or std::monostate for void.
template <class T>
using gathered_t = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

// The value of a done task that succeeded: copied from an lvalue handle, moved out of the task
// from an rvalue one.
template <class H>
gathered_t<task_value_t<H>> take_value(H&& task) {
  if constexpr (std::is_void_v<task_value_t<H>>)
    return {};
  else if constexpr (std::is_rvalue_reference_v<H&&>)
    return std::move(task.get());
  else
    return task.get();
}

template <bool kReturnExceptions, class... H>
auto gather_in_fiber(TaskBase* self, SourceLocation where, H&&... tasks) {
  TaskWatch watch(*self->loop, "weave::gather");
  watch.reserve(sizeof...(H));
  (watch.watch(tasks), ...);
  watch.wait(
      self,
      {.count = sizeof...(H), .on_error = !kReturnExceptions, .on_cancelled = !kReturnExceptions},
      where);
  if constexpr (kReturnExceptions) {
    return std::tuple<Result<task_value_t<H>>...>(
        Result<task_value_t<H>>::from(std::forward<H>(tasks))...);
  } else {
    if (std::uint32_t i = watch.first_failure(); i != TaskWatch::kNone) {
      const AnyTask* all[] = {&tasks...};
      rethrow_outcome(all[i]->state());
    }
    return std::tuple<gathered_t<task_value_t<H>>...>(take_value(std::forward<H>(tasks))...);
  }
}

/// What the homogeneous gather returns for a vector of Task<T>.
template <bool kReturnExceptions, class T>
using gather_vector_t =
    std::vector<std::conditional_t<kReturnExceptions, Result<T>, gathered_t<T>>>;

template <bool kReturnExceptions, class Vec>
auto gather_vector_in_fiber(TaskBase* self, Vec&& tasks, SourceLocation where) {
  using T = task_value_t<typename std::remove_cvref_t<Vec>::value_type>;
  gather_vector_t<kReturnExceptions, T> out;
  if (tasks.empty()) return out;
  TaskWatch watch(*self->loop, "weave::gather");
  watch.reserve(tasks.size());
  for (const auto& t : tasks) watch.watch(t);
  watch.wait(
      self,
      {.count = tasks.size(), .on_error = !kReturnExceptions, .on_cancelled = !kReturnExceptions},
      where);
  if constexpr (!kReturnExceptions)
    if (std::uint32_t i = watch.first_failure(); i != TaskWatch::kNone)
      rethrow_outcome(tasks[i].state());
  out.reserve(tasks.size());
  constexpr bool kMove = !std::is_lvalue_reference_v<Vec>;
  for (auto& t : tasks) {
    using Handle = std::conditional_t<kMove, Task<T>&&, const Task<T>&>;
    if constexpr (kReturnExceptions)
      out.push_back(Result<T>::from(static_cast<Handle>(t)));
    else
      out.push_back(take_value(static_cast<Handle>(t)));
  }
  return out;
}

template <bool kReturnExceptions, class Vec>
auto gather_vector(Vec&& tasks, SourceLocation where) {
  if (TaskBase* self = LoopAccess::current_task())
    return gather_vector_in_fiber<kReturnExceptions>(self, std::forward<Vec>(tasks), where);
  using V = std::remove_cvref_t<Vec>;
  if (tasks.empty())
    return gather_vector_t<kReturnExceptions, task_value_t<typename V::value_type>>();
  // Before the vector may be moved into the helper.
  Loop& loop = loop_of(tasks.front(), "weave::gather");
  return block_on(loop, "weave::gather", [v = V(std::forward<Vec>(tasks)), where]() mutable {
    constexpr bool kMove = !std::is_lvalue_reference_v<Vec>;
    using Arg = std::conditional_t<kMove, V&&, const V&>;
    return gather_vector_in_fiber<kReturnExceptions>(LoopAccess::current_task(),
                                                     static_cast<Arg>(v), where);
  });
}

template <bool kReturnExceptions, class First, class... H>
auto gather_pack(SourceLocation where, First&& first, H&&... rest) {
  if (TaskBase* self = LoopAccess::current_task())
    return gather_in_fiber<kReturnExceptions>(self, where, std::forward<First>(first),
                                              std::forward<H>(rest)...);
  Loop& loop = loop_of(first, "weave::gather");
  // The helper fiber works on its own copies of the handles; an rvalue handle stays an rvalue,
  // so its value is still moved out of the task.
  return block_on(loop, "weave::gather",
                  [f = std::remove_cvref_t<First>(first), ... r = std::remove_cvref_t<H>(rest),
                   where]() mutable {
                    return gather_in_fiber<kReturnExceptions>(LoopAccess::current_task(), where,
                                                              std::forward<First>(f),
                                                              std::forward<H>(r)...);
                  });
}

}  // namespace detail

/// Waits until every task is done and returns their results as a tuple, in argument order
/// (asyncio.gather). A `Task<void>` contributes a std::monostate.
///
/// Values are copied out of tasks passed as lvalues and moved out of tasks passed as rvalues
/// (`gather(weave::spawn(f), weave::spawn(g))` works with move-only results).
///
/// Outside any fiber it runs the loop until the tasks are done, as Task::get() does.
///
/// @par Example
/// @code
/// auto [user, posts] = weave::gather(weave::spawn(load_user, id), weave::spawn(load_posts, id));
/// @endcode
///
/// @par Cancellation
/// A checkpoint when it has to wait (when every task is already done it returns at once
/// without looking for a cancellation, as every wait in weave). Cancelling the caller throws
/// weave::Cancelled in it and leaves the tasks running (unlike asyncio, where cancelling a
/// gather cancels its children: in weave, waiting never cancels what is waited for; use a
/// TaskGroup to tie the tasks' lives to the caller's).
///
/// @par Errors
/// As soon as one task fails, its exception is rethrown, without waiting for the others, which
/// go on running (asyncio's behaviour); a task that was cancelled counts as a failure and makes
/// gather throw weave::Cancelled, as Task::get() would. With weave::return_exceptions as the
/// first argument, nothing is thrown for the tasks: each outcome becomes a weave::Result.
/// std::logic_error for an empty handle or a task of another loop.
template <class... H>
requires(sizeof...(H) > 0 && (detail::TaskHandle<H> && ...)) auto gather(H&&... tasks) {
  return detail::gather_pack<false>(SourceLocation::current(), std::forward<H>(tasks)...);
}

/// Waits until every task is done and returns each outcome as a weave::Result<T>, in argument
/// order; never throws for what a task did (asyncio's `return_exceptions=True`).
///
/// @par Example
/// @code
/// auto [a, b] = weave::gather(weave::return_exceptions, task_a, task_b);
/// if (!a) log(a.exception());
/// @endcode
///
/// @par Cancellation
/// A checkpoint when it has to wait; cancelling the caller leaves the tasks running.
template <class... H>
requires(sizeof...(H) > 0 && (detail::TaskHandle<H> && ...)) auto gather(ReturnExceptions,
                                                                         H&&... tasks) {
  return detail::gather_pack<true>(SourceLocation::current(), std::forward<H>(tasks)...);
}

/// The homogeneous form: waits for every task of `tasks` and returns their values in the same
/// order (std::monostate for `Task<void>`). Values are copied; pass the vector as an rvalue to
/// move them out of the tasks instead.
///
/// @par Example
/// @code
/// std::vector<weave::Task<int>> tasks;
/// for (int i = 0; i < 100; ++i) tasks.push_back(weave::spawn(square, i));
/// std::vector<int> squares = weave::gather(tasks);
/// @endcode
///
/// @par Cancellation
/// A checkpoint when it has to wait; cancelling the caller leaves the tasks running.
///
/// @par Errors
/// The first failure (in completion order) is rethrown at once; the other tasks go on running.
/// A cancelled task makes it throw weave::Cancelled.
template <class T>
std::vector<detail::gathered_t<T>> gather(const std::vector<Task<T>>& tasks,
                                          SourceLocation where = SourceLocation::current()) {
  return detail::gather_vector<false>(tasks, where);
}
template <class T>
std::vector<detail::gathered_t<T>> gather(std::vector<Task<T>>&& tasks,
                                          SourceLocation where = SourceLocation::current()) {
  return detail::gather_vector<false>(std::move(tasks), where);
}

/// The homogeneous form with weave::return_exceptions: one weave::Result<T> per task, in the
/// same order; never throws for what a task did.
template <class T>
std::vector<Result<T>> gather(ReturnExceptions, const std::vector<Task<T>>& tasks,
                              SourceLocation where = SourceLocation::current()) {
  return detail::gather_vector<true>(tasks, where);
}
template <class T>
std::vector<Result<T>> gather(ReturnExceptions, std::vector<Task<T>>&& tasks,
                              SourceLocation where = SourceLocation::current()) {
  return detail::gather_vector<true>(std::move(tasks), where);
}

}  // namespace weave
