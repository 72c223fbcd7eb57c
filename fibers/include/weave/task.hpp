#pragma once
// Tasks: fibers with a result (asyncio.Task).

#include <exception>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "weave/errors.hpp"
#include "weave/loop.hpp"

namespace weave {

enum class TaskStatus { created, ready, running, suspended, finished, abandoned };

/// A type-erased handle to a task: what current_task() and all_tasks() return, and the base of
/// Task<T>. Copies refer to the same task. Dropping every handle does not cancel the task.
///
/// @par Thread safety
/// Loop-affine: use a task's handles only on its loop's thread.
class AnyTask {
 public:
  AnyTask() noexcept = default;
  AnyTask(const AnyTask& o) noexcept : t_(o.t_) {
    if (t_) ++t_->refs;
  }
  AnyTask(AnyTask&& o) noexcept : t_(std::exchange(o.t_, nullptr)) {}
  AnyTask& operator=(AnyTask o) noexcept {
    std::swap(t_, o.t_);
    return *this;
  }
  ~AnyTask() {
    if (t_) detail::LoopAccess::release(t_);
  }

  /// True once the task has a result, an exception, or was cancelled.
  bool done() const noexcept { return t_->done(); }
  /// True if the task ended because of a cancellation.
  bool cancelled() const noexcept { return t_->outcome == detail::Outcome::Cancelled; }
  /// Requests cancellation: weave::Cancelled is thrown inside the task at its current
  /// suspension point (if it is suspended) or at its next one. A task cancelled before it first
  /// ran never runs its function. Returns false if the task is already done.
  bool cancel() noexcept { return detail::LoopAccess::cancel(t_); }
  /// Blocks until the task is done without rethrowing its exception. Inside a fiber it
  /// suspends only the calling fiber; outside any fiber it runs the loop.
  ///
  /// @par Cancellation
  /// A checkpoint: if the *calling* fiber is cancelled while waiting, Cancelled is thrown and
  /// the task being joined is not affected.
  void join(SourceLocation where = SourceLocation::current()) const {
    detail::LoopAccess::wait_done(t_, "Task::join", where);
  }
  /// The task's exception (nullptr if it succeeded); marks it as retrieved. Throws Cancelled if
  /// the task was cancelled. The task must be done.
  std::exception_ptr exception() const;

  /// The name given at spawn, or "task-<id>".
  std::string name() const;
  void set_name(std::string name) { t_->name = std::move(name); }
  std::uint64_t id() const noexcept { return t_->id; }
  TaskStatus status() const noexcept { return static_cast<TaskStatus>(t_->state); }
  /// Where the task last suspended (file, line, function).
  SourceLocation where() const noexcept { return t_->where; }
  Loop& loop() const noexcept { return *t_->loop; }

  /// Calls `fn()` or `fn(task)` on the loop (via call_soon) once the task is done; at once (on
  /// the next turn) if it already is.
  template <class F>
  void add_done_callback(F&& fn) {
    auto call = [self = *this, f = std::forward<F>(fn)]() mutable {
      if constexpr (std::is_invocable_v<F&, const AnyTask&>)
        f(static_cast<const AnyTask&>(self));
      else
        f();
    };
    add_done_callback_erased(detail::InlineFunction(std::move(call)));
  }

  explicit operator bool() const noexcept { return t_ != nullptr; }
  friend bool operator==(const AnyTask& a, const AnyTask& b) noexcept { return a.t_ == b.t_; }

  /// Wraps a task state, taking a new reference.
  explicit AnyTask(detail::TaskBase* t) noexcept : t_(t) {
    if (t_) ++t_->refs;
  }
  detail::TaskBase* state() const noexcept { return t_; }

 protected:
  void add_done_callback_erased(detail::InlineFunction fn);
  detail::TaskBase* t_ = nullptr;
};

namespace detail {

template <class T>
struct TaskResult : TaskBase {
  std::optional<T> value;
};
template <>
struct TaskResult<void> : TaskBase {};

template <class T, class Fn>
struct TaskImpl final : TaskResult<T> {
  explicit TaskImpl(Fn&& f) : fn(std::move(f)) { this->body_alive = true; }
  ~TaskImpl() override { destroy_fn(); }
  void run_body() noexcept override {
    try {
      if constexpr (std::is_void_v<T>) {
        fn();
      } else {
        this->value.emplace(fn());
      }
      this->outcome = Outcome::Value;
    } catch (const Cancelled&) {
      this->outcome = Outcome::Cancelled;
    } catch (...) {
      this->error = std::current_exception();
      this->outcome = Outcome::Error;
    }
    // The function's captures are released on the fiber, as soon as it ends, not when the last
    // handle goes.
    destroy_fn();
  }
  void discard_body() noexcept override { destroy_fn(); }
  void destroy_fn() noexcept {
    if (!this->body_alive) return;
    this->body_alive = false;
    fn.~Fn();
  }
  // Not a std::optional: its flag would round the task up by 8 bytes; TaskBase::body_alive,
  // in padding, says whether `fn` is alive.
  union {
    Fn fn;
  };
};

// Rethrows a done task's exception or cancellation.
void rethrow_outcome(TaskBase* t);

}  // namespace detail

/// A handle to a fiber that computes a T (asyncio.Task). Created by spawn().
template <class T>
class Task : public AnyTask {
 public:
  Task() noexcept = default;
  explicit Task(detail::TaskResult<T>* t) noexcept : AnyTask(t) {}

  /// Waits until the task is done and returns its result, or rethrows its exception (or
  /// Cancelled if it was cancelled). Inside a fiber it suspends only the calling fiber; outside
  /// any fiber it runs the loop until the task is done.
  ///
  /// @par Cancellation
  /// A checkpoint for the calling fiber; the awaited task is not cancelled with it.
  decltype(auto) get(SourceLocation where = SourceLocation::current()) const {
    detail::LoopAccess::wait_done(t_, "Task::get", where);
    detail::rethrow_outcome(t_);
    if constexpr (!std::is_void_v<T>) return static_cast<T&>(*result()->value);
  }

  template <class F>
  void add_done_callback(F&& fn) {
    auto call = [self = *this, f = std::forward<F>(fn)]() mutable {
      if constexpr (std::is_invocable_v<F&, const Task<T>&>)
        f(static_cast<const Task<T>&>(self));
      else
        f();
    };
    add_done_callback_erased(detail::InlineFunction(std::move(call)));
  }

 private:
  detail::TaskResult<T>* result() const noexcept { return static_cast<detail::TaskResult<T>*>(t_); }
};

template <class F, class... Args>
auto Loop::spawn(SpawnOptions options, F&& fn, Args&&... args) {
  using R = std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>;
  // The function and its arguments are decay-copied, like std::thread does.
  auto bound = [&] {
    if constexpr (sizeof...(Args) == 0)
      // No empty tuple beside the function: it would add 8 bytes to every task.
      return [f = std::forward<F>(fn)]() mutable -> R { return f(); };
    else
      return [f = std::forward<F>(fn),
              tup = std::make_tuple(std::forward<Args>(args)...)]() mutable -> R {
        return std::apply(f, std::move(tup));
      };
  }();
  auto* t = new detail::TaskImpl<R, decltype(bound)>(std::move(bound));
  Task<R> handle(t);  // refs: 1 for the fiber until it finishes, 1 for the handle
  try {
    detail::LoopAccess::start(*this, t, std::move(options));
  } catch (...) {
    --t->refs;  // the fiber will never run: its reference goes, the handle's frees the task
    throw;
  }
  return handle;
}

template <class F, class... Args>
requires(!std::is_same_v<std::decay_t<F>, SpawnOptions>) auto Loop::spawn(F&& fn, Args&&... args) {
  return spawn(SpawnOptions{}, std::forward<F>(fn), std::forward<Args>(args)...);
}

template <class T>
decltype(auto) Loop::run_until_complete(Task<T>& task) {
  run_until([](void* t) { return static_cast<detail::TaskBase*>(t)->done(); }, task.state());
  if (!task.done()) throw std::runtime_error("weave: the loop stopped before the task completed");
  return task.get();
}

/// Starts `fn(args...)` in a new fiber on the current loop and returns its Task.
///
/// The fiber is scheduled FIFO behind what is ready now (asyncio's create_task); with
/// SpawnOptions::eager it runs at once until its first suspension (asyncio's eager tasks),
/// which keeps few fibers alive in divide-and-conquer code.
///
/// @par Example
/// @code
/// auto t = weave::spawn([](int x) { weave::this_fiber::sleep_for(1s); return x * 2; }, 21);
/// int r = t.get();  // 42
/// @endcode
template <class F, class... Args>
requires(!std::is_same_v<std::decay_t<F>, SpawnOptions>) auto spawn(F&& fn, Args&&... args) {
  return Loop::current().spawn(std::forward<F>(fn), std::forward<Args>(args)...);
}
template <class F, class... Args>
auto spawn(SpawnOptions options, F&& fn, Args&&... args) {
  return Loop::current().spawn(std::move(options), std::forward<F>(fn),
                               std::forward<Args>(args)...);
}

/// The task whose fiber is running, or an empty handle outside any fiber.
AnyTask current_task() noexcept;
/// Every task of the current loop that is not done.
std::vector<AnyTask> all_tasks();

}  // namespace weave
