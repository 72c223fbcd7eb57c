// The switch code: starting, suspending, resuming and finishing fibers.
//
// Fibers switch with Boost.Context's fcontext primitives (make_fcontext / jump_fcontext), the
// layer under boost::context::fiber. Each jump passes the SwitchContext of the fiber that is
// leaving as `data`; the context that lands stores the leaver's saved registers into it. So
// every switch is one jump_fcontext and a few stores, with no hidden extra jumps (the
// boost::context::fiber constructor jumps onto a new stack and back, which the sanitizers
// would need to be told about).
//
// When a fiber suspends and the next ready item of the current turn is another fiber, it jumps
// straight to that fiber instead of going through the loop's own context: one switch instead
// of two.

#include <cxxabi.h>

#include <algorithm>
#include <boost/context/detail/fcontext.hpp>
#include <cassert>
#include <stdexcept>
#include <string>

#include "internal.hpp"
#include "sanitizer.hpp"
#include "weave/loop.hpp"
#include "weave/this_fiber.hpp"

namespace weave {

namespace fctx = boost::context::detail;

namespace detail {
namespace {
// The C++ runtime's per-thread exception state (libstdc++'s and libc++abi's layout).
struct EhGlobals {
  void* caught;
  unsigned int uncaught;
};
}  // namespace
}  // namespace detail

Loop* detail::running_loop() noexcept { return running_loop_slot(); }
void detail::set_running_loop(Loop* l) noexcept { running_loop_slot() = l; }

using detail::SwitchContext;
using detail::TaskBase;
using detail::TaskState;

void* eh_globals_of_this_thread() noexcept { return abi::__cxa_get_globals(); }

namespace {

// The largest stack a fiber may ask for: a sane bound that also fits the 32-bit sizes a task
// keeps (detail::StackSlot, TaskBase::stack_request).
constexpr std::size_t kMaxStackSize = std::size_t{1} << 30;

inline void save_eh(void* globals, SwitchContext* c) noexcept {
  auto* g = static_cast<detail::EhGlobals*>(globals);
  c->eh_caught = g->caught;
  c->eh_uncaught = g->uncaught;
}
inline void restore_eh(void* globals, const SwitchContext* c) noexcept {
  auto* g = static_cast<detail::EhGlobals*>(globals);
  g->caught = c->eh_caught;
  g->uncaught = c->eh_uncaught;
}

inline void san_start_switch([[maybe_unused]] SwitchContext* from,
                             [[maybe_unused]] SwitchContext* to) noexcept {
#if WEAVE_ASAN
  __sanitizer_start_switch_fiber(&from->asan_fake_stack, to->stack_bottom, to->stack_size);
#endif
#if WEAVE_TSAN
  __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
}

// First thing after every landing, and first thing in a new fiber.
inline void san_finish_switch([[maybe_unused]] SwitchContext* self,
                              [[maybe_unused]] SwitchContext* prev) noexcept {
#if WEAVE_ASAN
  // Tells ASan which stack we came from; that is how the loop's own stack bounds are learnt.
  __sanitizer_finish_switch_fiber(self->asan_fake_stack, &prev->stack_bottom, &prev->stack_size);
#endif
}

void fiber_trampoline(fctx::transfer_t t) { detail::LoopAccess::fiber_entry(t.fctx, t.data); }

// A finished fiber's last jump. It must not keep a frame on ASan's fake stack, which is freed
// by the start_switch(nullptr, ...) below (hence noinline and no instrumentation).
[[noreturn]] __attribute__((noinline)) WEAVE_NO_ASAN void exit_to(SwitchContext* self,
                                                                  SwitchContext* next) noexcept {
#if WEAVE_ASAN
  __sanitizer_start_switch_fiber(nullptr, next->stack_bottom, next->stack_size);
#endif
#if WEAVE_TSAN
  __tsan_switch_to_fiber(next->tsan_fiber, 0);
#endif
  fctx::jump_fcontext(next->fctx, self);
  __builtin_unreachable();
}

}  // namespace

void detail::LoopAccess::fiber_entry(void* from_fctx, void* data) {
  Loop* loop = detail::running_loop_slot();
  loop->land(from_fctx, data);
  TaskBase* self = loop->current_;
  self->run_body();
  // cancel() accepted while the fiber ran and no suspension point came to deliver it: the task
  // still ends cancelled, as the caller of cancel() was told (asyncio does the same). An
  // exception outranks it.
  if (self->cancel_requested && self->outcome == detail::Outcome::Value) {
    self->cancel_requested = false;
    self->outcome = detail::Outcome::Cancelled;
  }
  loop->complete(self);
  --loop->live_fibers_;
  self->finished = true;
  self->state = TaskState::Finished;
  if (loop->debug_) loop->check_slice(self);
  SwitchContext* next = loop->take_next_fiber();
  loop->running_ctx_ = next;
  exit_to(self, next);
}

// The hot path (land, jump, take_next_fiber, switch_out) is only called from this file and is
// inlined into each suspending call: a yield is then one function deep, not five.
[[gnu::always_inline]] inline void Loop::land(void* from_fctx, void* data) noexcept {
  auto* prev = static_cast<SwitchContext*>(data);
  SwitchContext* self = running_ctx_;
  san_finish_switch(self, prev);
  prev->fctx = from_fctx;
  restore_eh(eh_globals_, self);
  if (debug_ && self != &main_ctx_) slice_start_ = std::chrono::steady_clock::now();
  // The fiber we came from has ended: its stack is free now that nothing runs on it.
  if (prev->finished) recycle(static_cast<TaskBase*>(prev));
}

[[gnu::always_inline]] inline void Loop::jump(SwitchContext* from, SwitchContext* to) {
  save_eh(eh_globals_, from);
  running_ctx_ = to;
  san_start_switch(from, to);
  fctx::transfer_t t = fctx::jump_fcontext(to->fctx, from);
  land(t.fctx, t.data);
}

void Loop::finish_unstarted(TaskBase* t, detail::Outcome outcome,
                            std::exception_ptr error) noexcept {
  t->cancel_requested = false;
  t->outcome = outcome;
  t->error = std::move(error);
  t->state = TaskState::Finished;
  t->discard_body();  // the captures go now, as they would have when the function returned
  --live_fibers_;
  complete(t);
  release(t);  // the reference the fiber would have held
}

bool Loop::prepare(TaskBase* t) noexcept {
  if (t->state != TaskState::Created) return true;
  if (t->cancel_requested) {
    // Cancelled before it first ran: the function never runs (asyncio does the same).
    finish_unstarted(t, detail::Outcome::Cancelled, nullptr);
    return false;
  }
  try {
    t->stack = stacks_.acquire(t->stack_request);
  } catch (...) {
    // No stack to be had (mappings or memory exhausted): the task ends with that error, which
    // its waiters receive; nothing is left half-started.
    finish_unstarted(t, detail::Outcome::Error, std::current_exception());
    return false;
  }
  t->stack_bottom = t->stack.bottom();
  t->stack_size = t->stack.size;
  t->fctx = fctx::make_fcontext(t->stack.top(), t->stack.size, &fiber_trampoline);
#if WEAVE_TSAN
  t->tsan_fiber = __tsan_create_fiber(0);
#endif
  return true;
}

[[gnu::always_inline]] inline SwitchContext* Loop::take_next_fiber() noexcept {
  for (;;) {
    while (turn_budget_ > 0 && ready_.front()->is_fiber()) {
      auto* t = static_cast<TaskBase*>(ready_.pop_front());
      --ready_count_;
      --turn_budget_;
      if (t->state != TaskState::Created || prepare(t)) {
        t->state = TaskState::Running;
        current_ = t;
        return t;
      }
    }
    // A callback is next (callbacks run on the loop's own context), or the turn is over and
    // the loop must look at its goal or block: go back to the loop's context. Otherwise start
    // the next turn right here, without the two switches through the loop's context.
    if (turn_budget_ > 0 || !running_ || at_goal()) break;
    if (inbox_->maybe_has_items() || !timers_.empty() || io_watchers_ > 0)
      begin_turn(/*may_block=*/false);
    else
      turn_budget_ = ready_count_;  // nothing posted, no timer, no I/O: the turn is the queue
    if (turn_budget_ == 0) break;
  }
  current_ = nullptr;
  return &main_ctx_;
}

void Loop::run_fiber(TaskBase* t) {
  if (!prepare(t)) return;
  t->state = TaskState::Running;
  current_ = t;
  jump(&main_ctx_, t);
  // Back on the loop's own stack: some fiber chose to switch here.
}

[[gnu::always_inline]] inline void Loop::switch_out(TaskBase* self) {
  if (debug_) check_slice(self);
  SwitchContext* next = take_next_fiber();
  if (next == self) return;  // it was the next ready fiber itself (a yield with nobody else)
  jump(self, next);
}

bool Loop::park(TaskBase* self, SourceLocation where) {
  self->where = where;
  self->state = TaskState::Suspended;
  switch_out(self);
  self->woken_by_cancel = false;
  // A cancellation that arrived while the fiber was suspended, or after it was woken but before
  // it ran again, is delivered here, at this suspension point (asyncio's rule). Whatever the
  // fiber was woken for stays where it was (a future keeps its value), so nothing is lost.
  return !detail::LoopAccess::cancel_pending(self);
}

void Loop::yield_now(TaskBase* self, SourceLocation where) {
  detail::LoopAccess::checkpoint(self);
  self->where = where;
  self->state = TaskState::Ready;
  schedule(self);
  switch_out(self);
  // A cancel() that arrived while we were queued is delivered here.
  if (self->woken_by_cancel) self->woken_by_cancel = false;
  detail::LoopAccess::checkpoint(self);
}

void Loop::wake(TaskBase* t) noexcept {
  if (t->state != TaskState::Suspended) return;
  t->state = TaskState::Ready;
  schedule(t);
}

bool Loop::cancel_task(TaskBase* t) noexcept {
  if (t->done()) return false;
  t->cancel_requested = true;
  if (t->state == TaskState::Suspended && t->shield_depth == 0) {
    t->woken_by_cancel = true;
    wake(t);
  }
  return true;
}

void Loop::start(TaskBase* t, SpawnOptions&& options) {
  if (closed_) throw std::logic_error("weave: spawn on a closed loop");
  const std::size_t stack = options.stack_size ? options.stack_size : default_stack_size_;
  if (stack > kMaxStackSize)
    throw std::invalid_argument("weave: spawn: a stack size of " + std::to_string(stack) +
                                " bytes is more than the 1 GiB weave allows");
  t->loop = this;
  t->id = next_task_id_++;
  t->name = std::move(options.name);
  t->stack_request = static_cast<std::uint32_t>(stack);
  tasks_.push_back(static_cast<detail::Hook<detail::AllTasksTag>*>(t));
  ++live_fibers_;
  TaskBase* parent = current_;
  if (options.eager && parent != nullptr && prepare(t)) {
    // Eager start: the parent goes back to the head of the ready queue (it runs next in this
    // turn) and the child runs now, until its first suspension.
    t->state = TaskState::Running;
    parent->state = TaskState::Ready;
    ready_.push_front(parent);
    ++ready_count_;
    ++turn_budget_;
    current_ = t;
    jump(parent, t);
    return;
  }
  if (t->state == TaskState::Created) schedule(t);
}

void Loop::complete(TaskBase* t) noexcept {
  goal_dirty_ = true;
  tasks_.erase(static_cast<detail::Hook<detail::AllTasksTag>*>(t));
  while (detail::ListNode* n = t->waiters.pop_front()) wake(detail::waiter_of(n));
  while (!t->done_callbacks.empty()) schedule(t->done_callbacks.pop_front());
}

void Loop::recycle(TaskBase* t) noexcept {
#if WEAVE_ASAN
  // The frames that were live at the fiber's last jump may still be poisoned; the next fiber on
  // this stack must not trip over them. They lie above the fiber's last stack pointer (its saved
  // context); frames below it returned or were unwound, which unpoisons them. Clearing only that
  // part keeps ASan from committing shadow memory for the whole stack of every fiber.
  char* low = std::max(t->stack.bottom(), static_cast<char*>(t->fctx) - 4096);
  ASAN_UNPOISON_MEMORY_REGION(low, static_cast<std::size_t>(t->stack.top() - low));
#endif
#if WEAVE_TSAN
  __tsan_destroy_fiber(t->tsan_fiber);
  t->tsan_fiber = nullptr;
#endif
  stacks_.release(t->stack);
  t->stack = {};
  release(t);  // the reference the fiber held while it ran
}

// ---- this_fiber ------------------------------------------------------------------------------

namespace this_fiber {

bool in_fiber() noexcept { return detail::LoopAccess::current_task() != nullptr; }

void yield(SourceLocation where) {
  TaskBase* self = detail::LoopAccess::require_fiber("weave::this_fiber::yield");
  detail::LoopAccess::yield_now(self, where);
}

void sleep_until(TimePoint deadline, SourceLocation where) {
  TaskBase* self = detail::LoopAccess::require_fiber("weave::this_fiber::sleep_until");
  Loop& loop = *self->loop;
  if (deadline <= loop.time()) {
    detail::LoopAccess::yield_now(self, where);
    return;
  }
  detail::LoopAccess::checkpoint(self);
  self->fire = [](detail::TimerNode* n) {
    auto* t = static_cast<TaskBase*>(n);
    detail::LoopAccess::wake(*t->loop, t);
  };
  detail::LoopAccess::arm_timer(loop, self, deadline);
  if (!detail::LoopAccess::park(self, where)) {
    detail::LoopAccess::disarm_timer(loop, self);
    detail::LoopAccess::throw_cancelled(self);
  }
}

void sleep_for(Duration d, SourceLocation where) {
  if (d <= Duration::zero()) {
    yield(where);
    return;
  }
  TaskBase* self = detail::LoopAccess::require_fiber("weave::this_fiber::sleep_for");
  sleep_until(self->loop->time() + d, where);
}

}  // namespace this_fiber

}  // namespace weave
