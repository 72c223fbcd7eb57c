#pragma once
// The untyped part of a task: its fiber (stack and saved context), its scheduling state, its
// cancellation state and its completion (waiters and done callbacks).

#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>

#include "weave/detail/intrusive_list.hpp"
#include "weave/detail/runnable.hpp"
#include "weave/detail/source_location.hpp"
#include "weave/detail/stack.hpp"
#include "weave/detail/timer_heap.hpp"

namespace weave {
class Loop;
}

namespace weave::detail {

/// What the switch code keeps for one execution context (a fiber, or the loop's own stack).
struct SwitchContext {
  void* fctx = nullptr;  // boost::context::detail::fcontext_t while switched out
  // The C++ runtime's per-thread exception state (__cxa_eh_globals) of this context while it
  // is switched out: caught exceptions and the uncaught count must follow the fiber, not the
  // thread, or `throw;` in one fiber rethrows another fiber's exception.
  void* eh_caught = nullptr;
  unsigned eh_uncaught = 0;
  bool finished = false;  // set by a fiber's last switch: whoever lands next recycles it
  // Sanitizer state (unused in ordinary builds).
  void* asan_fake_stack = nullptr;
  const void* stack_bottom = nullptr;
  std::size_t stack_size = 0;
  void* tsan_fiber = nullptr;
};

struct WaitTag;
struct AllTasksTag;
class TaskBase;

/// What a task knows of a cancel scope it is inside (weave::CancelScope derives from it).
/// Scopes form a stack through `parent`, innermost first; each lives in a frame of the fiber.
struct ScopeNode : TimerNode {
  ScopeNode* parent = nullptr;
  TaskBase* task = nullptr;
  bool shield = false;         // hides cancellations from outside the scope
  bool cancel_called = false;  // the deadline passed or cancel() was called; stays set
};

// Abandoned: left suspended for ever by Loop::close() (it ignored its cancellation).
enum class TaskState : std::uint8_t { Created, Ready, Running, Suspended, Finished, Abandoned };
enum class Outcome : std::uint8_t { Pending, Value, Error, Cancelled };

// A task's name. One pointer, since most tasks have none: a std::string member would add 32
// bytes to every task (a million tasks alive at once are a million of them).
class TaskName {
 public:
  bool empty() const noexcept { return !s_; }
  const char* c_str() const noexcept { return s_ ? s_->c_str() : ""; }
  std::string str() const { return s_ ? *s_ : std::string(); }
  TaskName& operator=(std::string n) {
    if (n.empty())
      s_.reset();
    else if (s_)
      *s_ = std::move(n);
    else
      s_ = std::make_unique<std::string>(std::move(n));
    return *this;
  }

 private:
  std::unique_ptr<std::string> s_;
};

// The bases let the switch code, the timer heap and the wait queues get back to the task from
// the part they hold, with a static_cast.
class TaskBase : public Runnable,
                 public SwitchContext,
                 public TimerNode,
                 public Hook<WaitTag>,
                 public Hook<AllTasksTag> {
 public:
  TaskBase() = default;
  TaskBase(const TaskBase&) = delete;
  TaskBase& operator=(const TaskBase&) = delete;
  virtual ~TaskBase() = default;

  // Task states come and go with every spawn; they are recycled through a per-thread cache
  // (task.cpp) instead of going to malloc each time.
  static void* operator new(std::size_t size);
  static void operator delete(void* p, std::size_t size) noexcept;

  /// Runs the task's function on its fiber and stores the outcome. Called once.
  virtual void run_body() noexcept = 0;
  /// Destroys the function unrun (the task ended before it started).
  virtual void discard_body() noexcept = 0;

  bool done() const noexcept { return outcome != Outcome::Pending; }

  Loop* loop = nullptr;
  StackSlot stack;
  std::uint64_t id = 0;
  std::uint32_t refs = 1;  // Task handles, plus one while the fiber has not finished
  TaskState state = TaskState::Created;
  Outcome outcome = Outcome::Pending;
  bool cancel_requested = false;  // cancel() called and not yet delivered as Cancelled
  bool woken_by_cancel = false;   // the last wake-up came from cancel(), not from the waitee
  bool exception_retrieved = false;
  bool body_alive = false;             // the function (in TaskImpl) is constructed
  std::uint32_t shield_depth = 0;      // shielding scopes on `scopes`: hide cancel()
  std::uint32_t triggered_scopes = 0;  // scopes on `scopes` whose cancel_called is set
  std::uint32_t stack_request = 0;     // usable stack bytes wanted (Loop::start checks the range)
  ScopeNode* scopes = nullptr;         // the innermost cancel scope the fiber is in
  std::exception_ptr error;
  TaskName name;          // empty: shown as "task-<id>"
  SourceLocation where;   // the last suspension point
  IntrusiveList waiters;  // fibers blocked in join()/get() on this task
  RunQueue done_callbacks;
};

inline TaskBase* waiter_of(ListNode* n) noexcept {
  return static_cast<TaskBase*>(static_cast<Hook<WaitTag>*>(n));
}
inline TaskBase* task_of(ListNode* n) noexcept {
  return static_cast<TaskBase*>(static_cast<Hook<AllTasksTag>*>(n));
}

}  // namespace weave::detail
