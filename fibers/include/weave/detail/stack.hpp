#pragma once
// Fiber stacks: carved from large mmap'ed slabs, lazily committed, pooled per loop.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace weave::detail {

struct StackSlot {
  char* base = nullptr;  // lowest address of the slot, guard page included
  // 32 bits: a slot is part of every task (acquire() refuses stacks of 4 GiB and more).
  std::uint32_t size = 0;        // usable bytes above the guard page
  std::uint32_t class_size = 0;  // the pool's size class (usable + guard)
  bool guarded = false;
  bool warm = false;                                                    // may hold committed pages
  char* bottom() const noexcept { return base + (class_size - size); }  // lowest usable byte
  char* top() const noexcept { return base + class_size; }
  explicit operator bool() const noexcept { return base != nullptr; }
};

/// A pool of fiber stacks for one loop.
///
/// Memory: slabs are reserved with MAP_NORESERVE and pages are committed only when touched, so
/// an idle fiber costs the pages its frames reached (usually one). Freed stacks keep their
/// pages for reuse. When more than `kWarmStacks` freed stacks of a size class hold pages, the
/// loop calls trim() before it next sleeps: the surplus is returned to the kernel
/// (MADV_DONTNEED), neighbouring stacks in one call, so a burst of a million fibers does not pin
/// a million stacks' memory after it ends, and does not pay a system call per fiber either.
///
/// Mappings: a guard page splits its slab mapping in two, and Linux caps a process at
/// vm.max_map_count mappings (65530 by default). Guard pages are therefore given to the first
/// `guard_budget()` stacks alive in the process (a quarter of vm.max_map_count), and further
/// stacks come without a guard page. See docs/fibers.md, "Stacks".
///
/// Packed stacks: a request below one page but not 0 (e.g. `stack_size = 2048`) gets a slot of
/// whole kibibytes (at least kSmallStackMin) packed side by side with others, never a guard page,
/// so that fibers needing little stack (an idle fiber blocked in a wait uses about 0.5 KiB) share
/// pages: about 2.4 KB per idle fiber with 2 KiB stacks instead of one page each. An overflow
/// silently corrupts the neighbouring stack, and a signal handler that runs on the fiber's
/// stack (one installed without SA_ONSTACK/sigaltstack) needs room for the kernel's signal
/// frame too. Sanitizer builds round such requests up to the usual minimum.
class StackPool {
 public:
  static constexpr std::size_t kWarmStacks = 1024;
  /// The smallest packed stack.
  static constexpr std::size_t kSmallStackMin = 2048;

  StackPool() = default;
  StackPool(const StackPool&) = delete;
  StackPool& operator=(const StackPool&) = delete;
  ~StackPool();

  /// A stack with at least `usable` bytes (rounded up to whole pages; below a page, a packed
  /// stack of whole kibibytes).
  StackSlot acquire(std::size_t usable);
  /// The size class (slot bytes, guard page included) that acquire(usable) takes from.
  static std::size_t class_size_for(std::size_t usable) noexcept;
  void release(StackSlot s) noexcept;
  /// Leaves every slab mapped when the pool goes (stacks of abandoned fibers must stay).
  void keep_mapped() noexcept { keep_mapped_ = true; }
  /// True if trim() has work to do.
  bool wants_trim() const noexcept { return wants_trim_; }
  /// Returns the pages of all but the `kWarmStacks` most recently freed stacks of each class.
  void trim() noexcept;

  /// How many stacks alive at once in this process get a guard page.
  static std::size_t guard_budget() noexcept;
  /// Stack slots that carry a guard page, process-wide (a slot keeps its guard once given).
  static std::size_t guarded_stacks() noexcept;
  static std::size_t page_size() noexcept;

 private:
  struct SizeClass {
    std::size_t class_size = 0;
    std::vector<StackSlot> free;  // warm stacks first come back first (LIFO)
    std::size_t warm = 0;         // entries of `free` that may still hold pages
    std::size_t slots = 0;        // slots carved so far (sets the next slab's size)
    // Packed classes are smaller than a page (no guard page); guarded ones are 5 pages or more.
    bool packed() const noexcept { return class_size < page_size(); }
  };
  SizeClass& size_class(std::size_t class_size);
  void grow(SizeClass& sc);

  struct Slab {
    char* base;
    std::size_t bytes;
  };
  std::vector<Slab> slabs_;
  std::vector<SizeClass> classes_;
  SizeClass* last_ = nullptr;  // most spawns use one size: look it up once
  bool wants_trim_ = false;
  bool keep_mapped_ = false;
};

}  // namespace weave::detail
