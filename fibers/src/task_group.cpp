#include "weave/task_group.hpp"

#include <new>

#include "weave/loop.hpp"

namespace weave {

TaskGroup::TaskGroup(detail::TaskBase* parent) noexcept : parent_(parent), loop_(parent->loop) {}

std::size_t TaskGroup::reserve_slot() {
  // Both vectors get their room here, so that adopt() and on_child_done() cannot fail.
  if (free_slots_.capacity() < slots_.size() + 1) free_slots_.reserve(2 * (slots_.size() + 1));
  if (!free_slots_.empty()) {
    std::size_t slot = free_slots_.back();
    free_slots_.pop_back();
    return slot;
  }
  slots_.emplace_back();
  return slots_.size() - 1;
}

void TaskGroup::unreserve_slot(std::size_t slot) noexcept { free_slots_.push_back(slot); }

void TaskGroup::adopt(std::size_t slot, const AnyTask& task) noexcept {
  slots_[slot] = task;
  ++running_;
  // Noexcept: a child the group could not watch would outlive the group (and the body's frame
  // it may refer to); running out of memory here terminates instead.
  AnyTask(task).add_done_callback([this, slot](const AnyTask& done) { on_child_done(slot, done); });
  if (cancelling_) slots_[slot].cancel();  // before it first runs: its function never runs
}

void TaskGroup::on_child_done(std::size_t slot, const AnyTask& task) noexcept {
  slots_[slot] = AnyTask();
  free_slots_.push_back(slot);  // room reserved by reserve_slot()
  --running_;
  if (task.state()->outcome == detail::Outcome::Error) {
    try {
      errors_.push_back(task.exception());
    } catch (const std::bad_alloc&) {
      lost_error_ = true;  // the group still fails (below) and reports what it could record
    }
    cancel_all();
  }
  if (running_ == 0 && waiter_) detail::LoopAccess::wake(*loop_, waiter_);
}

void TaskGroup::cancel_all() noexcept {
  if (cancelling_) return;
  cancelling_ = true;
  for (AnyTask& child : slots_)
    if (child) child.cancel();
  if (body_scope_) body_scope_->cancel();
}

void TaskGroup::on_body_error(std::exception_ptr e) noexcept {
  // Noexcept: the group must go on to wait for its children whatever happens here.
  try {
    errors_.push_back(std::move(e));
  } catch (const std::bad_alloc&) {
    lost_error_ = true;  // the children are still cancelled and waited for
  }
  cancel_all();
}

void TaskGroup::on_body_cancelled(std::exception_ptr e, bool task_level) noexcept {
  parent_cancelled_ = std::move(e);
  parent_cancel_is_task_level_ = task_level;
  cancel_all();
}

void TaskGroup::wait_children(SourceLocation where) {
  while (running_ > 0) {
    detail::LoopAccess::checkpoint(parent_);
    waiter_ = parent_;
    const bool ok = detail::LoopAccess::park(parent_, where);
    waiter_ = nullptr;
    if (!ok) detail::LoopAccess::throw_cancelled(parent_);
  }
}

void TaskGroup::finish(SourceLocation where) {
  if (!cancelling_) {
    // The body returned normally: wait for the children. A failure among them cancels the
    // others but not this wait (running_ reaches zero all the same). A cancellation of the
    // parent here is passed on to the children.
    try {
      wait_children(where);
    } catch (const Cancelled& c) {
      on_body_cancelled(std::current_exception(), c.scope() == nullptr);
    }
  }
  if (running_ > 0) {
    // The children are being cancelled; leaving before they have finished would break the
    // group's promise (they may use the body's locals). Further cancellations of the parent
    // wait behind the shield, for its next checkpoint.
    CancelScope shield_scope(TimePoint::max(), /*shield=*/true);
    wait_children(where);
  }
  closed_ = true;
  if (!errors_.empty()) {
    // The errors win over a cancellation of the parent, but it must not be lost: a scope's stays
    // in force by itself (level-triggered); a Task::cancel() was consumed when it was thrown, so
    // it is requested again.
    if (parent_cancelled_ && parent_cancel_is_task_level_) detail::LoopAccess::cancel(parent_);
    throw ExceptionGroup(std::move(errors_));
  }
  if (parent_cancelled_) std::rethrow_exception(parent_cancelled_);
  if (lost_error_) throw std::bad_alloc();  // a failure happened; the body's result is not valid
}

}  // namespace weave
