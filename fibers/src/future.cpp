// Futures: completion from any thread, waiting on the owner loop.

#include "weave/future.hpp"

#include <stdexcept>
#include <string>

namespace weave::detail {

FutureStateBase::FutureStateBase(Loop& loop) : loop_(&loop), inbox_(LoopAccess::inbox(loop)) {
  if (!inbox_) throw std::logic_error("weave: Promise on a closed loop");
  inbox_->retain();
  invoke = &FutureStateBase::on_posted;
}

FutureStateBase::~FutureStateBase() { inbox_->release(); }

void FutureStateBase::end_complete(Outcome o, std::exception_ptr e) noexcept {
  retain();  // the reference that end_complete_handing_over() may hand over
  if (!end_complete_handing_over(o, std::move(e))) release();
}

bool FutureStateBase::end_complete_handing_over(Outcome o, std::exception_ptr e) noexcept {
  outcome_ = o;
  error_ = std::move(e);
  // A local copy: once the state is posted, it may be gone before post() returns.
  Inbox* inbox = inbox_;
  const bool here = inbox->owned_by_this_thread();
  status_.store(FutureStatus::Ready, std::memory_order_release);
  if (here) {
    if (!inbox->closed()) notify();
    return false;
  }
  // Another thread: the waiters are woken on the loop. The posted node is this state itself,
  // kept alive by the caller's reference until the loop has run (or discarded) it; the last
  // release, and so the outcome's destruction, is then the loop's. Once pushed, the state (and
  // its hold on the inbox) may be gone before post() has rung the inbox's eventfd: the inbox
  // needs a hold of its own for that long (two uncontended atomics, off the loop's thread).
  inbox->retain();
  if (!inbox->post(this)) release();  // the loop is gone: nobody can be waiting
  inbox->release();
  return true;
}

void FutureStateBase::on_posted(Runnable* r, bool run) {
  auto* s = static_cast<FutureStateBase*>(r);
  if (run) s->notify();
  s->release();
}

void FutureStateBase::notify() noexcept {
  if (notified_) return;
  notified_ = true;
  LoopAccess::note_completion(*loop_);
  while (ListNode* n = waiters_.pop_front()) LoopAccess::wake(*loop_, waiter_of(n));
  while (!callbacks_.empty()) LoopAccess::schedule(*loop_, callbacks_.pop_front());
}

void FutureStateBase::wait(const char* what, SourceLocation where) {
  if (ready()) return;
  TaskBase* self = LoopAccess::current_task();
  if (!self) {
    if (Loop::current_or_null() != loop_)
      throw std::logic_error(std::string("weave: ") + what +
                             " outside any fiber, on a thread whose loop does not own the future");
    if (loop_->is_running())
      throw std::logic_error(std::string("weave: ") + what +
                             " would block the loop: called from a callback on the loop's own "
                             "context; wait from a fiber or add a done callback");
    LoopAccess::run_until(
        *loop_, [](void* p) { return static_cast<FutureStateBase*>(p)->notified_; }, this);
    if (!ready())
      throw std::runtime_error(std::string("weave: ") + what +
                               ": the loop stopped before it completed");
    return;
  }
  if (self->loop != loop_)
    throw std::logic_error(std::string("weave: ") + what +
                           ": the future belongs to another loop's thread");
  LoopAccess::checkpoint(self);
  // Ready but not yet notified (completed on another thread, wake-up still in the inbox):
  // the value is there, so there is no need to wait for the wake-up.
  if (ready()) return;
  auto* hook = static_cast<Hook<WaitTag>*>(self);
  waiters_.push_back(hook);
  if (!LoopAccess::park(self, where)) {
    if (hook->linked()) waiters_.erase(hook);
    LoopAccess::throw_cancelled(self);
  }
}

void FutureStateBase::add_callback(InlineFunction fn) {
  auto* n = new CallbackNode(loop_, std::move(fn));
  // Called on the loop's thread: a ready future's callback can be scheduled at once, even if
  // the wake-up from a completing thread is still in the inbox.
  if (ready()) {
    LoopAccess::schedule(*loop_, n);
  } else {
    callbacks_.push_back(n);
  }
}

void FutureStateBase::rethrow_if_failed() {
  switch (outcome_) {
    case Outcome::Error:
      retrieved_ = true;
      std::rethrow_exception(error_);
    case Outcome::Cancelled:
      throw Cancelled{};
    default:
      return;
  }
}

}  // namespace weave::detail
