#include "weave/detail/task_watch.hpp"

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "weave/loop.hpp"

namespace weave::detail {

namespace {
// A task's done callback for one watch: a ready-queue item of its own kind rather than a general
// CallbackNode, 40 bytes instead of 160, carved from arrays the watch allocates in bulk (gather
// over a million tasks makes one allocation for their nodes instead of a million). It holds a
// reference to its task (the outcome is read when it runs) and one to the state (whose chunks
// hold the node itself, so that reference is dropped last).
struct WatchNode : Runnable {
  TaskWatch::State* state;
  TaskBase* task;
  std::uint32_t index;
  static void invoke_node(Runnable* r, bool run) noexcept;
};
}  // namespace

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
  // Done-callback nodes, in chunks that never move: node i of the watch is in the chunk that
  // covers it. The first chunk has reserve()'s size, later ones grow geometrically.
  std::vector<std::unique_ptr<WatchNode[]>> chunks;
  std::size_t chunk_free = 0;  // unused nodes at the end of the last chunk
  std::size_t chunk_size = 0;  // size of the last chunk

  WatchNode* new_node() {
    if (chunk_free == 0) {
      const std::size_t n = std::max<std::size_t>(16, 2 * chunk_size);
      chunks.push_back(std::make_unique_for_overwrite<WatchNode[]>(n));
      chunk_size = chunk_free = n;
    }
    return &chunks.back()[chunk_size - chunk_free--];
  }
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

TaskWatch::TaskWatch(Loop& loop, const char* what) : s_(new State) {
  s_->loop = &loop;
  s_->what = what;
}

TaskWatch::~TaskWatch() {
  if (!s_) return;
  s_->closed = true;
  s_->release();
}

void TaskWatch::reserve(std::size_t n) {
  s_->order.reserve(n);
  if (n > s_->chunk_free) {
    s_->chunks.push_back(std::make_unique_for_overwrite<WatchNode[]>(n));
    s_->chunk_size = s_->chunk_free = n;
  }
}

void WatchNode::invoke_node(Runnable* r, bool run) noexcept {
  auto* n = static_cast<WatchNode*>(r);
  TaskWatch::State* s = n->state;
  TaskBase* t = n->task;
  if (run && !s->closed) {
    s->record(n->index, t->outcome);
    if (s->waiter && s->met()) LoopAccess::wake(*s->loop, s->waiter);
  }
  LoopAccess::release(t);
  s->release();  // may free the node's chunk: last
}

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
  WatchNode* n = s_->new_node();
  n->next_ready = nullptr;
  n->invoke = &WatchNode::invoke_node;
  n->state = s_;
  n->task = t.state();
  n->index = index;
  ++s_->refs;
  ++n->task->refs;
  n->task->done_callbacks.push_back(n);
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
