// Task handles, waiting for tasks, and the end of a task's life.

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "internal.hpp"
#include "sanitizer.hpp"
#include "weave/detail/slab.hpp"
#include "weave/loop.hpp"

namespace weave {

using detail::TaskBase;

// ---- Task-state memory ----------------------------------------------------------------------
//
// From the thread's slab heap (weave/detail/slab.hpp: huge-page friendly slabs with per-slab free
// lists). Under ASan every task state is a heap block of its own, so that a use after free or a
// leak of a task is reported.

void* detail::TaskBase::operator new(std::size_t size) {
#if !WEAVE_ASAN
  if (size <= detail::SlabHeap::kMaxBlock) return detail::SlabHeap::allocate_block(size);
#endif
  return ::operator new(size);
}

void detail::TaskBase::operator delete(void* p, std::size_t size) noexcept {
#if !WEAVE_ASAN
  if (size <= detail::SlabHeap::kMaxBlock) return detail::SlabHeap::deallocate(p, size);
#endif
  ::operator delete(p);
}

void Loop::release(TaskBase* t) noexcept {
  if (--t->refs != 0) return;
  if (t->outcome == detail::Outcome::Error && !t->exception_retrieved) {
    ErrorContext ctx{"Task exception was never retrieved (task " + detail::display_name(t) + ")",
                     t->error, detail::display_name(t)};
    // A task handle may outlive its loop; then there is no handler left to call.
    if (detail::loop_alive(t->loop))
      t->loop->call_exception_handler(ctx);
    else
      std::fprintf(stderr, "weave: %s\n", ctx.message.c_str());
  }
  delete t;
}

namespace detail {

void LoopAccess::not_in_fiber(const char* what) {
  throw std::logic_error(std::string("weave: ") + what +
                         " suspends the calling fiber and was called outside any fiber; spawn "
                         "a fiber (weave::spawn) or start with weave::run()");
}

namespace {
// The cancellation a checkpoint of `t` sees: the task's own cancel() ranks above every scope
// (it comes from outside them all); among scopes the outermost triggered one wins, as in
// Trio. A shielding scope hides everything outside it. Sets `scope` to the winning scope, or
// to nullptr for the task's own cancel().
bool find_cancel(const TaskBase* t, const ScopeNode*& scope) noexcept {
  scope = nullptr;
  bool found = false;
  for (const ScopeNode* s = t->scopes; s; s = s->parent) {
    if (s->cancel_called) {
      scope = s;
      found = true;
    }
    if (s->shield) return found;
  }
  if (t->cancel_requested) {
    scope = nullptr;
    return true;
  }
  return found;
}
}  // namespace

bool LoopAccess::cancel_pending_slow(const TaskBase* self) noexcept {
  const ScopeNode* scope;
  return find_cancel(self, scope);
}

void LoopAccess::throw_cancelled(TaskBase* self) {
  const ScopeNode* scope = nullptr;
  if (find_cancel(self, scope) && scope) throw Cancelled(static_cast<const void*>(scope));
  self->cancel_requested = false;
  throw Cancelled{};
}

void LoopAccess::trigger_scope(ScopeNode* s) noexcept {
  if (s->cancel_called) return;
  s->cancel_called = true;
  TaskBase* t = s->task;
  ++t->triggered_scopes;
  if (t->state != TaskState::Suspended)
    return;  // a running or ready fiber sees it at its
             // next checkpoint
  for (const ScopeNode* n = t->scopes; n != s; n = n->parent)
    if (n->shield) return;  // an inner shield hides it until the fiber leaves that shield
  t->woken_by_cancel = true;
  t->loop->wake(t);
}

void LoopAccess::wait_done(TaskBase* t, const char* what, SourceLocation where) {
  if (!t) throw std::logic_error(std::string("weave: ") + what + " on an empty task handle");
  TaskBase* self = current_task();
  if (!self) {
    if (t->done()) return;
    Loop& l = *t->loop;
    if (l.running_)
      throw std::logic_error(std::string("weave: ") + what +
                             " would block the loop: it was called from a callback on the "
                             "loop's own context; wait from a fiber or add a done callback");
    l.run_until([](void* p) { return static_cast<TaskBase*>(p)->done(); }, t);
    if (!t->done())
      throw std::runtime_error(std::string("weave: ") + what +
                               ": the loop stopped before it completed");
    return;
  }
  if (self == t)
    throw std::logic_error(std::string("weave: ") + what + ": a task waits for itself");
  if (t->done()) return;
  if (t->loop != self->loop)
    throw std::logic_error(std::string("weave: ") + what +
                           ": the task belongs to another loop; bridge with a Promise");
  checkpoint(self);
  t->waiters.push_back(static_cast<Hook<WaitTag>*>(self));
  if (!park(self, where)) {
    auto* hook = static_cast<Hook<WaitTag>*>(self);
    if (hook->linked()) t->waiters.erase(hook);
    throw_cancelled(self);
  }
}

void rethrow_outcome(TaskBase* t) {
  switch (t->outcome) {
    case Outcome::Error:
      t->exception_retrieved = true;
      std::rethrow_exception(t->error);
    case Outcome::Cancelled:
      throw Cancelled{};
    default:
      return;
  }
}

std::string display_name(const TaskBase* t) {
  return t->name.empty() ? "task-" + std::to_string(t->id) : t->name.str();
}

}  // namespace detail

std::exception_ptr AnyTask::exception() const {
  if (!t_->done()) throw std::logic_error("weave: Task::exception() on a task that is not done");
  if (t_->outcome == detail::Outcome::Cancelled) throw Cancelled{};
  t_->exception_retrieved = true;
  return t_->error;
}

std::string AnyTask::name() const { return detail::display_name(t_); }

void AnyTask::add_done_callback_erased(detail::InlineFunction fn) {
  auto* n = new detail::CallbackNode(t_->loop, std::move(fn));
  if (t_->done())
    detail::LoopAccess::schedule(*t_->loop, n);
  else
    t_->done_callbacks.push_back(n);
}

AnyTask current_task() noexcept { return AnyTask(detail::LoopAccess::current_task()); }

std::vector<AnyTask> Loop::all_tasks() const {
  std::vector<AnyTask> out;
  out.reserve(tasks_.size());
  tasks_.for_each([&](detail::ListNode* n) { out.emplace_back(detail::task_of(n)); });
  return out;
}

std::vector<AnyTask> all_tasks() { return Loop::current().all_tasks(); }

}  // namespace weave
