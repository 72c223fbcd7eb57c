// restaurant: the robot restaurant of the asyncio tutorial, run by one loop on one thread.
// GreetBot greets diners at the front desk, WaitBot waits tables and takes orders, ChefBot
// does the cooking and WineBot manages the bar. Each bot is a fiber; queues carry the work
// from one bot to the next; the diners are fibers too.
//
// The Python original is the opening picture of the first asyncio tutorial ("Asyncio:
// Coroutine, Task, Future"): a restaurant staffed by four robots,
//
//   - GreetBot, greet diners at the front desk
//   - WaitBot, wait tables and take orders
//   - ChefBot, do the cooking
//   - WineBot, manage the bar
//
// then the same restaurant with a single "LoopBot" that does all four jobs, switching to
// another whenever the one at hand has to wait: "effective only if [each] task is short!".
// The tutorial draws the picture; this program runs it. The weave loop is the LoopBot. Each
// bot is written as if it had the restaurant to itself, a plain loop over its work; the loop
// switches between the bots at each wait. No step of any bot computes for long (they wait:
// for the oven, the cork, the diner), which is what makes one LoopBot enough; cpu_starve.cpp
// shows what happens when a step does not.
//
// What it teaches:
//   - concurrency without threads: four bots and three diners make progress together on one
//     thread (the program checks that every fiber ran on the same thread);
//   - a pipeline of fibers linked by weave::Queue: each bot takes work from its own queue
//     (its "inbox") and puts work into the next bot's;
//   - weave::Event for "wait until this has happened" (a diner waits for the dish and the wine);
//   - closing time with Queue::shutdown(): each bot's `for (... : inbox.consume())` ends once
//     its inbox is shut down and empty, so the bots leave their loops and go home, and each
//     hands in its timesheet as its task's result;
//   - the evening takes less time than the bots' work added up, because the bots work at the
//     same time: on one thread.
//
// Usage: restaurant [--virtual-time]
//   --virtual-time  run on a weave::ManualClock: the loop jumps from timer to timer instead of
//                   waiting, so the program ends at once with the same output every time (this
//                   is how the test runs it).

#include <chrono>
#include <cstdio>
#include <functional>
#include <iterator>
#include <set>
#include <string_view>
#include <thread>
#include <vector>

#include "weave/weave.hpp"

using namespace std::chrono_literals;
using std::chrono::milliseconds;

namespace {

// How long each bot's jobs take. The waits are sleeps: a real robot would wait for an oven, a
// cork, a diner making up their mind. These are what the loop overlaps.
constexpr milliseconds kSeatDiner = 200ms;  // GreetBot
constexpr milliseconds kTakeOrder = 300ms;  // WaitBot
constexpr milliseconds kServe = 100ms;      // WaitBot, per plate or glass
constexpr milliseconds kPour = 400ms;       // WineBot
constexpr milliseconds kEat = 800ms;        // a diner

struct Diner {
  const char* name;
  milliseconds arrives;  // after opening time
  const char* dish;
  milliseconds cooking;  // ChefBot's time for the dish
  const char* wine;
  int table = 0;               // given by GreetBot
  weave::Event dish_served{};  // set by WaitBot
  weave::Event wine_served{};  // set by WaitBot
};

// What WaitBot is asked to do. WaitBot has one inbox for everything, so it does its jobs in
// the order they come, like a waiter who cannot be in two places at once.
struct Ticket {
  enum Kind { take_order, serve_dish, serve_wine };
  Kind kind;
  Diner* diner;
};

// What the bots share: their inboxes, the opening time, and the threads the fibers ran on.
// Everything here is touched by one thread only, so nothing needs a mutex: a fiber is only
// ever interrupted where it waits.
struct Restaurant {
  weave::Queue<Diner*> door;     // GreetBot's inbox: diners who just came in
  weave::Queue<Ticket> waiter;   // WaitBot's inbox
  weave::Queue<Diner*> kitchen;  // ChefBot's inbox: food orders
  weave::Queue<Diner*> bar;      // WineBot's inbox: drink orders
  weave::TimePoint opened = weave::Loop::current().time();
  std::set<std::thread::id> threads;

  double now() const {
    return std::chrono::duration<double>(weave::Loop::current().time() - opened).count();
  }
  void note_thread() { threads.insert(std::this_thread::get_id()); }
};

// A bot's job that takes `d`: the bot's fiber waits, and the loop runs the others meanwhile.
// The time goes on the bot's timesheet.
void work_for(milliseconds d, milliseconds& timesheet) {
  weave::this_fiber::sleep_for(d);
  timesheet += d;
}

// ---- The bots --------------------------------------------------------------------------------
// Each is a plain loop over its inbox. consume() calls get() for each item, so the bot's fiber
// suspends while its inbox is empty, and the loop ends when the inbox is shut down and empty.
// When it ends, the bot goes home and hands in its timesheet: the task's result.

milliseconds greet_bot(Restaurant& r) {
  r.note_thread();
  milliseconds worked{0};
  int next_table = 1;
  for (Diner* d : r.door.consume()) {
    std::printf("[%.3f s] GreetBot: welcome, %s! This way, please.\n", r.now(), d->name);
    work_for(kSeatDiner, worked);
    d->table = next_table++;
    std::printf("[%.3f s] GreetBot: %s is seated at table %d\n", r.now(), d->name, d->table);
    r.waiter.put(Ticket{Ticket::take_order, d});
  }
  std::printf("[%.3f s] GreetBot: closing time, going home\n", r.now());
  return worked;
}

milliseconds wait_bot(Restaurant& r) {
  r.note_thread();
  milliseconds worked{0};
  for (Ticket t : r.waiter.consume()) {
    Diner* d = t.diner;
    switch (t.kind) {
      case Ticket::take_order:
        std::printf("[%.3f s] WaitBot:  taking the order at table %d\n", r.now(), d->table);
        work_for(kTakeOrder, worked);
        std::printf("[%.3f s] WaitBot:  table %d orders %s and %s\n", r.now(), d->table, d->dish,
                    d->wine);
        // Two orders, to two bots who work on them at the same time.
        r.kitchen.put(d);
        r.bar.put(d);
        break;
      case Ticket::serve_dish:
        work_for(kServe, worked);
        std::printf("[%.3f s] WaitBot:  %s for table %d\n", r.now(), d->dish, d->table);
        d->dish_served.set();
        break;
      case Ticket::serve_wine:
        work_for(kServe, worked);
        std::printf("[%.3f s] WaitBot:  %s for table %d\n", r.now(), d->wine, d->table);
        d->wine_served.set();
        break;
    }
  }
  std::printf("[%.3f s] WaitBot:  closing time, going home\n", r.now());
  return worked;
}

milliseconds chef_bot(Restaurant& r) {
  r.note_thread();
  milliseconds worked{0};
  for (Diner* d : r.kitchen.consume()) {
    std::printf("[%.3f s] ChefBot:  cooking %s\n", r.now(), d->dish);
    work_for(d->cooking, worked);
    std::printf("[%.3f s] ChefBot:  %s is ready\n", r.now(), d->dish);
    r.waiter.put(Ticket{Ticket::serve_dish, d});
  }
  std::printf("[%.3f s] ChefBot:  closing time, going home\n", r.now());
  return worked;
}

milliseconds wine_bot(Restaurant& r) {
  r.note_thread();
  milliseconds worked{0};
  for (Diner* d : r.bar.consume()) {
    std::printf("[%.3f s] WineBot:  pouring %s\n", r.now(), d->wine);
    work_for(kPour, worked);
    r.waiter.put(Ticket{Ticket::serve_wine, d});
  }
  std::printf("[%.3f s] WineBot:  closing time, going home\n", r.now());
  return worked;
}

// ---- The diners ------------------------------------------------------------------------------

void dine(Diner& d, Restaurant& r) {
  r.note_thread();
  weave::this_fiber::sleep_for(d.arrives);
  std::printf("[%.3f s] %s comes in\n", r.now(), d.name);
  r.door.put(&d);
  // Whichever comes first, the diner waits for both. (wait() returns at once if the event
  // was already set.)
  d.dish_served.wait();
  d.wine_served.wait();
  std::printf("[%.3f s] %s starts eating\n", r.now(), d.name);
  weave::this_fiber::sleep_for(kEat);
  std::printf("[%.3f s] %s pays and leaves\n", r.now(), d.name);
}

double seconds(milliseconds d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

int main(int argc, char** argv) {
  const bool virtual_time = argc > 1 && std::string_view(argv[1]) == "--virtual-time";

  weave::ManualClock manual_clock;  // must outlive the loop that reads it
  weave::Loop::Options options;
  if (virtual_time) options.clock = &manual_clock;

  weave::run(options, [] {
    Restaurant r;
    r.note_thread();
    // The diners live here, in main's fiber, until everyone has left; the queues carry
    // pointers to them. (An Event cannot be copied or moved, so neither can a Diner.)
    Diner diners[] = {
        {"Alice", 0ms, "the mushroom risotto", 1200ms, "a glass of Barolo"},
        {"Bob", 300ms, "the steak frites", 1000ms, "a Riesling"},
        {"Carol", 600ms, "the tomato soup", 500ms, "a flute of Champagne"},
    };

    // Staff first, then the diners: every fiber is spawned now and starts in this order.
    struct Bot {
      const char* name;
      milliseconds (*work)(Restaurant&);
    };
    const Bot staff[] = {{"GreetBot", greet_bot},
                         {"WaitBot", wait_bot},
                         {"ChefBot", chef_bot},
                         {"WineBot", wine_bot}};
    std::vector<weave::Task<milliseconds>> bots;
    for (const Bot& bot : staff)
      bots.push_back(weave::spawn(weave::SpawnOptions{.name = bot.name}, bot.work, std::ref(r)));
    std::vector<weave::Task<void>> guests;
    for (Diner& d : diners) guests.push_back(weave::spawn(dine, std::ref(d), std::ref(r)));

    for (weave::Task<void>& g : guests) g.get();
    const double evening = r.now();

    // Everyone has left, so every inbox is empty. Shutting an inbox down ends its bot's
    // consume() loop. get() waits for each bot to go home and returns its timesheet (it would
    // rethrow if a bot had failed).
    std::printf("[%.3f s] closing the restaurant\n", r.now());
    for (weave::Queue<Diner*>* inbox : {&r.door, &r.kitchen, &r.bar}) inbox->shutdown();
    r.waiter.shutdown();
    std::vector<milliseconds> timesheets;
    for (weave::Task<milliseconds>& b : bots) timesheets.push_back(b.get());

    std::printf("====\n");
    milliseconds total{0};
    for (std::size_t i = 0; i < bots.size(); ++i) {
      std::printf("%-8s worked %.3f s\n", staff[i].name, seconds(timesheets[i]));
      total += timesheets[i];
    }
    std::printf("%.3f s of work done by %zu bots for %zu diners in %.3f s\n", seconds(total),
                bots.size(), std::size(diners), evening);
    std::printf("threads used by the %zu fibers: %zu\n", bots.size() + guests.size() + 1,
                r.threads.size());
  });
  return 0;
}
