#include "weave/cancel_scope.hpp"

#include <cassert>

#include "weave/loop.hpp"

namespace weave {

namespace detail {
TimePoint deadline_in(Duration d) {
  const TimePoint now =
      LoopAccess::require_fiber("weave::fail_after / move_on_after")->loop->time();
  if (d > Duration::zero() && d >= TimePoint::max() - now) return TimePoint::max();
  return now + d;
}
}  // namespace detail

CancelScope::CancelScope(TimePoint deadline, bool shield_outside) : deadline_(deadline) {
  detail::TaskBase* self = detail::LoopAccess::require_fiber("weave::CancelScope");
  task = self;
  shield = shield_outside;
  parent = self->scopes;
  self->scopes = this;
  if (shield) ++self->shield_depth;
  fire = &CancelScope::on_deadline;
  if (deadline_ != TimePoint::max()) {
    if (deadline_ <= self->loop->time())
      cancel();  // already due: the first checkpoint inside throws
    else
      detail::LoopAccess::arm_timer(*self->loop, this, deadline_);
  }
}

CancelScope::~CancelScope() {
  detail::TaskBase* self = task;
  assert(self->scopes == this && "cancel scopes must be left in reverse order of opening");
  detail::LoopAccess::disarm_timer(*self->loop, this);
  self->scopes = parent;
  if (shield) --self->shield_depth;
  if (ScopeNode::cancel_called) --self->triggered_scopes;
}

void CancelScope::cancel() noexcept { detail::LoopAccess::trigger_scope(this); }

void CancelScope::reschedule(TimePoint deadline) {
  deadline_ = deadline;
  if (ScopeNode::cancel_called) return;
  Loop& loop = *task->loop;
  detail::LoopAccess::disarm_timer(loop, this);
  if (deadline_ == TimePoint::max()) return;
  if (deadline_ <= loop.time())
    cancel();
  else
    detail::LoopAccess::arm_timer(loop, this, deadline_);
}

void CancelScope::on_deadline(detail::TimerNode* n) {
  detail::LoopAccess::trigger_scope(static_cast<detail::ScopeNode*>(n));
}

}  // namespace weave
