#pragma once
// The allocator of task states: per-thread slabs of 2 MiB, carved into blocks of one size
// class each. Internal; public only so that its own tests can drive it.

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace weave::detail {

struct Slab;

/// A thread's heap of task-state blocks.
///
/// Why not plain `operator new`: a program that starts a million tasks touches some 300 MB of
/// fresh memory, and with 4 KiB pages most of its time goes to page faults. Slabs are 2 MiB
/// aligned regions, so the kernel can back them with transparent huge pages (one fault per
/// 2 MiB instead of 512) once a size class needs more than one slab; the first slab of each class
/// stays on small pages, so a program with a few tasks does not pay 2 MiB per class.
///
/// Each slab serves one size class (64-byte steps up to kMaxBlock) and keeps its own free list,
/// so a freed block is reused by the next task of its size, and a slab whose blocks are all
/// free goes back to the system (one empty slab per heap is kept for reuse).
///
/// Threads: a block is normally freed on the thread that allocated it (task states are
/// loop-affine), which takes no lock. A block freed on another thread goes on its slab's
/// remote list under a process-wide mutex (a rare, slow path), and the owner takes the list back
/// when it next needs a slab. A heap whose thread exits hands its slabs that still hold blocks
/// to no one: the last free of such an orphaned slab releases it.
class SlabHeap {
 public:
  static constexpr std::size_t kSlabBytes = std::size_t{2} << 20;
  static constexpr std::size_t kClassBytes = 64;
  static constexpr std::size_t kClasses = 16;
  static constexpr std::size_t kMaxBlock = kClassBytes * kClasses;

  SlabHeap() noexcept = default;
  SlabHeap(const SlabHeap&) = delete;
  SlabHeap& operator=(const SlabHeap&) = delete;
  /// Releases the empty slabs and orphans the others (their blocks stay valid).
  ~SlabHeap();

  /// A block of at least `size` bytes (1..kMaxBlock), aligned to 64 bytes.
  /// @throws std::bad_alloc
  void* allocate(std::size_t size);
  /// Returns `p`, allocated with `size` by any heap, from any thread.
  static void deallocate(void* p, std::size_t size) noexcept;
  /// allocate() on the calling thread's heap (or, during thread exit after that heap was
  /// destroyed, on a shared one under a lock).
  static void* allocate_block(std::size_t size);

  /// The heap of the calling thread (null once it has been destroyed at thread exit).
  static SlabHeap* current() noexcept;

  /// Slabs this heap owns, spare one included (for tests and statistics).
  std::size_t slab_count() const noexcept { return slabs_; }
  /// Blocks handed out and not yet returned, as this heap counts them (remote frees count
  /// once the heap has taken them back).
  std::size_t blocks_in_use() const noexcept;

 private:
  friend struct Slab;
  void* refill(std::size_t cls);
  Slab* new_slab(std::size_t cls);
  void release(Slab* s) noexcept;
  void free_local(Slab* s, void* p) noexcept;
  bool take_remote() noexcept;
  void link_partial(Slab* s) noexcept;
  void unlink_partial(Slab* s) noexcept;

  Slab* current_[kClasses] = {};  // the slab each class allocates from
  Slab* partial_[kClasses] = {};  // other slabs of the class with free blocks
  Slab* all_ = nullptr;           // every slab owned, for remote frees and the destructor
  Slab* spare_ = nullptr;         // one empty slab kept for reuse
  std::size_t slabs_ = 0;
  std::size_t per_class_[kClasses] = {};     // slabs per class, for the huge-page policy
  std::atomic<bool> remote_pending_{false};  // some slab of ours has a remote list
};

}  // namespace weave::detail
