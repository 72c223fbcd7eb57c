// Debugging aids: the task dump and the stack-overflow report.

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <mutex>
#include <ostream>
#include <sstream>

#include "internal.hpp"
#include "weave/loop.hpp"

namespace weave {

namespace {

const char* state_name(detail::TaskState s) {
  switch (s) {
    case detail::TaskState::Created:
      return "created";
    case detail::TaskState::Ready:
      return "ready";
    case detail::TaskState::Running:
      return "running";
    case detail::TaskState::Suspended:
      return "suspended";
    case detail::TaskState::Finished:
      return "finished";
    case detail::TaskState::Abandoned:
      return "abandoned";
  }
  return "?";
}

}  // namespace

void Loop::dump_tasks(std::ostream& out) const {
  out << "weave: " << tasks_.size() << " live task(s)\n";
  tasks_.for_each([&](detail::ListNode* n) {
    const detail::TaskBase* t = detail::task_of(n);
    out << "  #" << t->id << " " << detail::display_name(t) << " [" << state_name(t->state) << "]";
    if (t->cancel_requested) out << " (cancel requested)";
    if (t->state == detail::TaskState::Suspended || t->state == detail::TaskState::Ready) {
      if (t->where.line)
        out << " at " << t->where.file << ":" << t->where.line << " in " << t->where.function;
    }
    out << "\n";
  });
}

std::string Loop::dump_tasks() const {
  std::ostringstream s;
  dump_tasks(s);
  return s.str();
}

// ---- Stack overflow ---------------------------------------------------------------------------
//
// Every thread that has a loop gets an alternate signal stack, and the process a SIGSEGV/SIGBUS
// handler. A fault inside the guard page of the running fiber's stack is a stack overflow: the
// handler names the task and re-raises with the default action, so the process dies as it would
// have, with a message that says which task overflowed. Any other fault goes to the handler
// that was installed before weave's.

namespace detail {

namespace {

struct sigaction g_previous_segv;
struct sigaction g_previous_bus;
thread_local bool tl_altstack_ready = false;

void write_str(const char* s) {
  [[maybe_unused]] auto n = ::write(STDERR_FILENO, s, std::strlen(s));
}

void write_num(unsigned long long v) {
  char buf[24];
  int i = sizeof buf;
  buf[--i] = '\0';
  do {
    buf[--i] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v && i > 0);
  write_str(buf + i);
}

void chain(int sig, siginfo_t* info, void* uctx) {
  const struct sigaction& prev = sig == SIGBUS ? g_previous_bus : g_previous_segv;
  if (prev.sa_flags & SA_SIGINFO) {
    prev.sa_sigaction(sig, info, uctx);
    return;
  }
  if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN) {
    prev.sa_handler(sig);
    return;
  }
  // Default action: uninstall ourselves; returning re-executes the faulting instruction.
  ::signal(sig, SIG_DFL);
}

void on_fault(int sig, siginfo_t* info, void* uctx) {
  TaskBase* t = LoopAccess::current_task();
  auto* addr = static_cast<char*>(info->si_addr);
  if (t && t->stack.base && addr >= t->stack.base - 64 * 1024 && addr < t->stack.bottom()) {
    write_str("weave: stack overflow in task '");
    if (!t->name.empty()) {
      write_str(t->name.c_str());
    } else {
      write_str("task-");
      write_num(t->id);
    }
    write_str("' (id ");
    write_num(t->id);
    write_str(", stack of ");
    write_num(t->stack.size);
    write_str(" bytes");
    if (!t->stack.guarded) write_str(", without a guard page");
    write_str("); give it a larger stack with SpawnOptions::stack_size\n");
    ::signal(sig, SIG_DFL);
    return;
  }
  chain(sig, info, uctx);
}

}  // namespace

void install_overflow_handler() {
  if (!tl_altstack_ready) {
    tl_altstack_ready = true;
    stack_t current{};
    if (::sigaltstack(nullptr, &current) == 0 && (current.ss_flags & SS_DISABLE)) {
      // The handler must not run on the overflowing stack. Leaked with the thread on purpose:
      // a thread's alternate stack must outlive every loop the thread runs.
      const std::size_t size = 64 * 1024;
      void* mem = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (mem != MAP_FAILED) {
        stack_t ss{};
        ss.ss_sp = mem;
        ss.ss_size = size;
        ::sigaltstack(&ss, nullptr);
      }
    }
  }
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_sigaction = &on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGSEGV, &sa, &g_previous_segv);
    ::sigaction(SIGBUS, &sa, &g_previous_bus);
  });
}

}  // namespace detail
}  // namespace weave
