#include "weave/detail/task_watch.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "weave/loop.hpp"

namespace weave::detail {

// Invariant: `refs` is 1 for the TaskWatch (until it is destroyed) plus 1 per done callback
// that has neither run nor been discarded; the state is deleted when it drops to zero.
struct TaskWatch::State {
  Loop* loop = nullptr;
  const char* what = "";
  TaskBase* waiter = nullptr;        // the fiber parked in wait(), or nullptr
  std::vector<std::uint32_t> order;  // indices of completed tasks, in completion order
  std::uint32_t watched = 0;
  std::uint32_t first_failure = kNone;
  std::uint32_t first_error = kNone;
  std::uint32_t first_cancelled = kNone;
  Goal goal;
  std::uint32_t refs = 1;
  bool closed = false;  // the TaskWatch is gone: callbacks only drop their reference

  bool met() const noexcept {
    return order.size() >= goal.count || (goal.on_error && first_error != kNone) ||
           (goal.on_cancelled && first_cancelled != kNone);
  }
  void record(std::uint32_t index, Outcome outcome) {
    order.push_back(index);
    if (outcome == Outcome::Error && first_error == kNone) first_error = index;
    if (outcome == Outcome::Cancelled && first_cancelled == kNone) first_cancelled = index;
    if (outcome != Outcome::Value && first_failure == kNone) first_failure = index;
  }
  void release() noexcept {
    if (--refs == 0) delete this;
  }
};

namespace {
// The done callback's share of the state: released when the callback is destroyed, whether it
// ran or the loop closed before it could.
class StateRef {
 public:
  explicit StateRef(TaskWatch::State* s) noexcept : s_(s) {}  // takes a reference already counted
  StateRef(StateRef&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  StateRef(const StateRef&) = delete;
  StateRef& operator=(const StateRef&) = delete;
  ~StateRef() {
    if (s_) s_->release();
  }
  TaskWatch::State* get() const noexcept { return s_; }

 private:
  TaskWatch::State* s_;
};
}  // namespace

TaskWatch::TaskWatch(Loop& loop, const char* what) : s_(new State) {
  s_->loop = &loop;
  s_->what = what;
}

TaskWatch::~TaskWatch() {
  if (!s_) return;
  s_->closed = true;
  s_->release();
}

void TaskWatch::reserve(std::size_t n) { s_->order.reserve(n); }

void TaskWatch::watch(const AnyTask& t) {
  if (!t)
    throw std::logic_error(std::string("weave: ") + s_->what + " was given an empty task handle");
  if (&t.loop() != s_->loop)
    throw std::logic_error(std::string("weave: ") + s_->what +
                           ": a task belongs to another loop; bridge with a Promise");
  if (t.state() == LoopAccess::current_task())
    throw std::logic_error(std::string("weave: ") + s_->what + ": a task waits for itself");
  const std::uint32_t index = s_->watched++;
  // Room for every completion is made here, so that recording one (in a callback) never
  // allocates. Geometric growth: reserve(n) alone allocates exactly n.
  if (s_->order.capacity() < s_->watched)
    s_->order.reserve(std::max<std::size_t>(s_->watched, 2 * s_->order.capacity()));
  if (t.done()) {
    s_->record(index, t.state()->outcome);
    return;
  }
  ++s_->refs;
  StateRef ref(s_);
  AnyTask(t).add_done_callback([ref = std::move(ref), index](const AnyTask& done) {
    State* s = ref.get();
    if (s->closed) return;
    s->record(index, done.state()->outcome);
    if (s->waiter && s->met()) LoopAccess::wake(*s->loop, s->waiter);
  });
}

Loop& TaskWatch::loop() const noexcept { return *s_->loop; }
std::size_t TaskWatch::watched() const noexcept { return s_->watched; }
std::size_t TaskWatch::completed() const noexcept { return s_->order.size(); }
std::uint32_t TaskWatch::completed_at(std::size_t k) const noexcept { return s_->order[k]; }
std::uint32_t TaskWatch::first_failure() const noexcept { return s_->first_failure; }
void TaskWatch::wait(TaskBase* self, Goal goal, SourceLocation where) {
  State* s = s_;
  s->goal = goal;
  while (!s->met()) {
    LoopAccess::checkpoint(self);
    s->waiter = self;
    const bool ok = LoopAccess::park(self, where);
    s->waiter = nullptr;
    if (!ok) LoopAccess::throw_cancelled(self);
  }
}

}  // namespace weave::detail
