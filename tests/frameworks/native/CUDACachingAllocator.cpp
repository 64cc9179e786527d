// A stand-in for PyTorch's libc10_cuda.so: a caching allocator over the CUDA driver whose native
// frames carry the names PyTorch's own have (c10/cuda/CUDACachingAllocator.cpp, c10/cuda/
// driver_api.h, and libcudart's cudaApiMalloc), so that a profiler sees the same stack shape below
// the Python frames: NativeCachingAllocator::allocate -> NativeCachingAllocator::malloc ->
// DeviceCachingAllocator::malloc -> alloc_block -> cudaMallocMaybeCapturing -> allocPrimitive ->
// cudart::cudaApiMalloc -> cuMemAlloc_v2, or with expandable segments alloc_block ->
// try_allocate_expandable_block -> map_block -> ExpandableSegment::map -> cuMemCreate/cuMemMap.
// Written from the allocator's documented behaviour (block pools, size rounding, splitting,
// private pools for graph capture, expandable segments); no PyTorch code is copied.
//
// Every named function is a real frame: noipa, a compiler barrier after calls, and the build's
// -O1 -fno-omit-frame-pointer -fno-optimize-sibling-calls (see build.sh).
//
// Test bookkeeping the real allocator has no counterpart for: each allocation carries a small
// integer tag (the category the test expects), and the library counts, per tag, the bytes it
// obtained from the driver (cuMemAlloc_v2 sizes, or cuMemCreate sizes with expandable segments),
// the bytes still held, and the number of those driver calls.
#include <dlfcn.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <vector>

extern "C" {
#include "cuda_min.h"
}
#include "frames.h"

namespace {
constexpr int kTags = 16;
struct Accounting {
  std::mutex m;
  unsigned long long allocated[kTags] = {}, live[kTags] = {}, calls[kTags] = {};
  void obtain(int tag, size_t n) {
    std::lock_guard<std::mutex> g(m);
    allocated[tag] += n;
    live[tag] += n;
    calls[tag] += 1;
  }
  void give_back(int tag, size_t n) {
    std::lock_guard<std::mutex> g(m);
    live[tag] -= n;
  }
  unsigned long long read(int what, int tag) {
    std::lock_guard<std::mutex> g(m);
    return (what == 0 ? allocated : what == 1 ? live : calls)[tag];
  }
};
Accounting g_acct;
thread_local int t_tag = 0;
}  // namespace

// ---- libcudart's part: the driver reached through cuGetProcAddress, a primary context -------
namespace cudart {
struct DriverTable {
  decltype(&cuInit) init;
  decltype(&cuDeviceGet) deviceGet;
  decltype(&cuDeviceTotalMem_v2) deviceTotalMem;
  decltype(&cuDevicePrimaryCtxRetain) primaryCtxRetain;
  decltype(&cuCtxSetCurrent) ctxSetCurrent;
  decltype(&cuMemAlloc_v2) memAlloc;
  decltype(&cuMemFree_v2) memFree;
  decltype(&cuMemGetInfo_v2) memGetInfo;
};
DriverTable g_driver;
CUcontext g_primary = nullptr;
size_t g_total_mem = 0;
thread_local bool t_context_current = false;

FRAME CUresult globalState_initializeDriver() {
  void* h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!h) return CUDA_ERROR_NOT_INITIALIZED;
  auto gpa = reinterpret_cast<decltype(&cuGetProcAddress_v2)>(dlsym(h, "cuGetProcAddress_v2"));
  if (!gpa) return CUDA_ERROR_NOT_FOUND;
  struct { const char* name; void** slot; } wanted[] = {
      {"cuInit", reinterpret_cast<void**>(&g_driver.init)},
      {"cuDeviceGet", reinterpret_cast<void**>(&g_driver.deviceGet)},
      {"cuDeviceTotalMem", reinterpret_cast<void**>(&g_driver.deviceTotalMem)},
      {"cuDevicePrimaryCtxRetain", reinterpret_cast<void**>(&g_driver.primaryCtxRetain)},
      {"cuCtxSetCurrent", reinterpret_cast<void**>(&g_driver.ctxSetCurrent)},
      {"cuMemAlloc", reinterpret_cast<void**>(&g_driver.memAlloc)},
      {"cuMemFree", reinterpret_cast<void**>(&g_driver.memFree)},
      {"cuMemGetInfo", reinterpret_cast<void**>(&g_driver.memGetInfo)},
  };
  for (auto& w : wanted) {
    CUdriverProcAddressQueryResult st;
    CUresult r = gpa(w.name, w.slot, CUDA_VERSION, CU_GET_PROC_ADDRESS_DEFAULT, &st);
    if (r != CUDA_SUCCESS || !*w.slot) return r != CUDA_SUCCESS ? r : CUDA_ERROR_NOT_FOUND;
  }
  CUdevice dev;
  CUresult r = g_driver.init(0);
  if (r == CUDA_SUCCESS) r = g_driver.deviceGet(&dev, 0);
  if (r == CUDA_SUCCESS) r = g_driver.deviceTotalMem(&g_total_mem, dev);
  if (r == CUDA_SUCCESS) r = g_driver.primaryCtxRetain(&g_primary, dev);
  KEEP_FRAME();
  return r;
}

// The runtime makes the primary context current in each thread on its first call there.
FRAME CUresult lazyInitContextState() {
  if (t_context_current) return CUDA_SUCCESS;
  CUresult r = g_driver.ctxSetCurrent(g_primary);
  t_context_current = r == CUDA_SUCCESS;
  KEEP_FRAME();
  return r;
}

__attribute__((visibility("hidden"))) FRAME CUresult cudaApiMalloc(void** p, size_t size) {
  CUresult r = lazyInitContextState();
  CUdeviceptr d = 0;
  if (r == CUDA_SUCCESS) r = g_driver.memAlloc(&d, size);
  KEEP_FRAME();
  if (r == CUDA_SUCCESS) *p = reinterpret_cast<void*>(d);
  return r;
}

__attribute__((visibility("hidden"))) FRAME CUresult cudaApiMemGetInfo(size_t* free, size_t* total) {
  CUresult r = lazyInitContextState();
  if (r == CUDA_SUCCESS) r = g_driver.memGetInfo(free, total);
  KEEP_FRAME();
  return r;
}

__attribute__((visibility("hidden"))) FRAME CUresult cudaApiFree(void* p) {
  CUresult r = lazyInitContextState();
  if (r == CUDA_SUCCESS) r = g_driver.memFree(reinterpret_cast<CUdeviceptr>(p));
  KEEP_FRAME();
  return r;
}
}  // namespace cudart

namespace c10 {
struct GatheredContext {
  virtual ~GatheredContext() = default;
};

namespace cuda {
// c10's table of driver entry points for the virtual-memory calls, found with dlsym.
struct DriverAPI {
  decltype(&cuMemAddressReserve) cuMemAddressReserve_;
  decltype(&cuMemAddressFree) cuMemAddressFree_;
  decltype(&cuMemCreate) cuMemCreate_;
  decltype(&cuMemRelease) cuMemRelease_;
  decltype(&cuMemMap) cuMemMap_;
  decltype(&cuMemUnmap) cuMemUnmap_;
  decltype(&cuMemSetAccess) cuMemSetAccess_;
  static DriverAPI* get();
};

FRAME DriverAPI* DriverAPI::get() {
  static DriverAPI api = [] {
    DriverAPI a{};
    void* h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (h) {
      a.cuMemAddressReserve_ = reinterpret_cast<decltype(a.cuMemAddressReserve_)>(dlsym(h, "cuMemAddressReserve"));
      a.cuMemAddressFree_ = reinterpret_cast<decltype(a.cuMemAddressFree_)>(dlsym(h, "cuMemAddressFree"));
      a.cuMemCreate_ = reinterpret_cast<decltype(a.cuMemCreate_)>(dlsym(h, "cuMemCreate"));
      a.cuMemRelease_ = reinterpret_cast<decltype(a.cuMemRelease_)>(dlsym(h, "cuMemRelease"));
      a.cuMemMap_ = reinterpret_cast<decltype(a.cuMemMap_)>(dlsym(h, "cuMemMap"));
      a.cuMemUnmap_ = reinterpret_cast<decltype(a.cuMemUnmap_)>(dlsym(h, "cuMemUnmap"));
      a.cuMemSetAccess_ = reinterpret_cast<decltype(a.cuMemSetAccess_)>(dlsym(h, "cuMemSetAccess"));
    }
    return a;
  }();
  KEEP_FRAME();
  return &api;
}

namespace CUDACachingAllocator {
namespace Native {
namespace {
constexpr size_t kMinBlockSize = 512;       // every size is rounded to a multiple of this
constexpr size_t kSmallSize = 1 << 20;      // the largest "small" request
constexpr size_t kSmallBuffer = 2 << 20;    // small requests are packed into 2 MiB segments
constexpr size_t kLargeBuffer = 20 << 20;   // requests of 1-10 MiB get a 20 MiB segment
constexpr size_t kMinLargeAlloc = 10 << 20; // from here on a segment is the request, rounded
constexpr size_t kRoundLarge = 2 << 20;     // ... to 2 MiB

using MempoolId_t = std::pair<unsigned long long, unsigned long long>;
struct Block;
struct PrivatePool;
struct ExpandableSegment;
bool BlockComparatorSize(const Block* a, const Block* b);
bool BlockComparatorAddress(const Block* a, const Block* b);
using Comparison = bool (*)(const Block*, const Block*);

struct BlockPool {
  explicit BlockPool(bool small, PrivatePool* owner = nullptr)
      : blocks(BlockComparatorSize), unmapped(BlockComparatorAddress), is_small(small), owner_PrivatePool(owner) {}
  std::set<Block*, Comparison> blocks;    // free, mapped blocks
  std::set<Block*, Comparison> unmapped;  // expandable address space with no memory behind it
  const bool is_small;
  PrivatePool* owner_PrivatePool;
};

struct Block {
  size_t size;
  BlockPool* pool;
  char* ptr;
  bool allocated = false;
  bool mapped = true;
  Block* prev = nullptr;
  Block* next = nullptr;
  ExpandableSegment* expandable_segment_ = nullptr;
  int segment_tag = 0;  // classic segments: the tag of the allocation that made it (head block)
  Block(size_t s, BlockPool* p, char* a) : size(s), pool(p), ptr(a) {}
  bool is_split() const { return prev != nullptr || next != nullptr; }
};

bool BlockComparatorSize(const Block* a, const Block* b) {
  return a->size != b->size ? a->size < b->size : a->ptr < b->ptr;
}
bool BlockComparatorAddress(const Block* a, const Block* b) { return a->ptr < b->ptr; }

struct PrivatePool {
  PrivatePool() : large_blocks(false, this), small_blocks(true, this) {}
  int use_count = 1;
  BlockPool large_blocks;
  BlockPool small_blocks;
};

struct SegmentRange {
  char* ptr;
  size_t size;
};

struct AllocParams {
  AllocParams(size_t size, BlockPool* pool, size_t alloc_size)
      : search_key(size, nullptr, nullptr), pool(pool), alloc_size(alloc_size) {}
  size_t size() const { return search_key.size; }
  Block search_key;
  BlockPool* pool;
  size_t alloc_size;
  Block* block = nullptr;
  CUresult err = CUDA_SUCCESS;
};

// One reserved address range per pool, backed page by page (2 MiB small, 20 MiB large).
struct ExpandableSegment {
  FRAME ExpandableSegment(signed char device, std::optional<CUstream> stream, size_t address_space_size,
                          size_t segment_size, std::vector<signed char> peers)
      : device_(device), segment_size_(segment_size),
        max_handles_((address_space_size + segment_size - 1) / segment_size) {
    (void)stream;
    (void)peers;
    ok_ = DriverAPI::get()->cuMemAddressReserve_(&ptr_, segment_size_ * max_handles_, 0, 0, 0) == CUDA_SUCCESS;
    KEEP_FRAME();
  }
  // Maps every page touching `range` (which starts on a page); size 0 means out of memory.
  FRAME SegmentRange map(SegmentRange range) {
    size_t begin = (range.ptr - ptr()) / segment_size_;
    size_t end = (range.ptr + range.size - ptr() + segment_size_ - 1) / segment_size_;
    if (handles_.size() < end) handles_.resize(end);
    for (size_t i = begin; i < end; i++) {
      CUmemAllocationProp prop = {};
      prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
      prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
      prop.location.id = device_;
      CUmemGenericAllocationHandle h = 0;
      if (DriverAPI::get()->cuMemCreate_(&h, segment_size_, &prop, 0) != CUDA_SUCCESS) {
        for (size_t j = begin; j < i; j++) release_handle(j);
        return SegmentRange{range.ptr, 0};
      }
      handles_[i] = Handle{h, t_tag};
      g_acct.obtain(t_tag, segment_size_);
    }
    mapAndSetAccess(begin, end);
    KEEP_FRAME();
    return SegmentRange{ptr() + begin * segment_size_, (end - begin) * segment_size_};
  }
  // Unmaps the whole pages inside `range`; returns what was unmapped.
  FRAME SegmentRange unmap(SegmentRange range) {
    size_t begin = (range.ptr - ptr() + segment_size_ - 1) / segment_size_;
    size_t end = (range.ptr + range.size - ptr()) / segment_size_;
    if (begin >= end) return SegmentRange{range.ptr, 0};
    for (size_t i = begin; i < end; i++) {
      DriverAPI::get()->cuMemUnmap_(ptr_ + i * segment_size_, segment_size_);
      release_handle(i);
    }
    KEEP_FRAME();
    return SegmentRange{ptr() + begin * segment_size_, (end - begin) * segment_size_};
  }
  FRAME ~ExpandableSegment() {
    DriverAPI::get()->cuMemAddressFree_(ptr_, segment_size_ * max_handles_);
    KEEP_FRAME();
  }
  char* ptr() const { return reinterpret_cast<char*>(ptr_); }
  size_t size() const { return segment_size_ * max_handles_; }
  bool ok() const { return ok_; }

 private:
  struct Handle {
    CUmemGenericAllocationHandle handle;
    int tag;
  };
  FRAME void mapAndSetAccess(size_t begin, size_t end) {
    for (size_t i = begin; i < end; i++)
      DriverAPI::get()->cuMemMap_(ptr_ + i * segment_size_, segment_size_, 0, handles_[i]->handle, 0);
    CUmemAccessDesc desc = {};
    desc.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    desc.location.id = device_;
    desc.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
    DriverAPI::get()->cuMemSetAccess_(ptr_ + begin * segment_size_, (end - begin) * segment_size_, &desc, 1);
    KEEP_FRAME();
  }
  void release_handle(size_t i) {
    DriverAPI::get()->cuMemRelease_(handles_[i]->handle);
    g_acct.give_back(handles_[i]->tag, segment_size_);
    handles_[i].reset();
  }
  signed char device_;
  size_t segment_size_;
  size_t max_handles_;
  CUdeviceptr ptr_ = 0;
  bool ok_ = false;
  std::vector<std::optional<Handle>> handles_;
};

bool g_expandable_segments = false;

FRAME CUresult allocPrimitive(void** ptr, size_t size, AllocParams& p) {
  (void)p;
  CUresult r = cudart::cudaApiMalloc(ptr, size);
  KEEP_FRAME();
  return r;
}

// Under capture PyTorch relaxes the stream's capture mode around cudaMalloc; no streams here.
FRAME CUresult cudaMallocMaybeCapturing(void** ptr, size_t size, AllocParams& p) {
  CUresult r = allocPrimitive(ptr, size, p);
  KEEP_FRAME();
  return r;
}
}  // namespace

class DeviceCachingAllocator {
 public:
  FRAME Block* malloc(size_t orig_size, CUstream stream) {
    std::unique_lock<std::recursive_mutex> lock(mutex);
    std::shared_ptr<GatheredContext> context;
    (void)stream;
    size_t size = round_size(orig_size);
    BlockPool& pool = get_pool(size);
    AllocParams params(size, &pool, get_allocation_size(size));
    bool found = get_free_block(params) ||
                 alloc_block(params, false, context, lock) ||
                 (release_cached_blocks() && alloc_block(params, true, context, lock));
    KEEP_FRAME();
    if (!found) return nullptr;
    return alloc_found_block(params, should_split(params.block, size));
  }

  FRAME void free(Block* block) {
    std::lock_guard<std::recursive_mutex> lock(mutex);
    block->allocated = false;
    free_block(block);
    KEEP_FRAME();
  }

  FRAME void emptyCache() {
    std::lock_guard<std::recursive_mutex> lock(mutex);
    release_cached_blocks();
    KEEP_FRAME();
  }

  void beginAllocateToPool(MempoolId_t id) {
    std::lock_guard<std::recursive_mutex> lock(mutex);
    auto it = graph_pools.find(id);
    if (it == graph_pools.end())
      graph_pools.emplace(id, std::make_unique<PrivatePool>());
    else
      it->second->use_count++;
    captures_underway.push_back(id);
  }

  void endAllocateToPool(MempoolId_t id) {
    std::lock_guard<std::recursive_mutex> lock(mutex);
    captures_underway.erase(std::remove(captures_underway.begin(), captures_underway.end(), id), captures_underway.end());
  }

  // A graph using the pool was destroyed; at zero users its free segments may be released.
  void releasePool(MempoolId_t id) {
    std::lock_guard<std::recursive_mutex> lock(mutex);
    auto it = graph_pools.find(id);
    if (it != graph_pools.end() && it->second->use_count > 0) it->second->use_count--;
  }

 private:
  static size_t round_size(size_t size) {
    return size < kMinBlockSize ? kMinBlockSize : kMinBlockSize * ((size + kMinBlockSize - 1) / kMinBlockSize);
  }

  static size_t get_allocation_size(size_t size) {
    if (size <= kSmallSize) return kSmallBuffer;
    if (size < kMinLargeAlloc) return kLargeBuffer;
    return kRoundLarge * ((size + kRoundLarge - 1) / kRoundLarge);
  }

  // Allocations made while a capture is underway go to that graph's private pool.
  BlockPool& get_pool(size_t size) {
    if (!captures_underway.empty()) {
      PrivatePool* p = graph_pools.at(captures_underway.back()).get();
      return size <= kSmallSize ? p->small_blocks : p->large_blocks;
    }
    return size <= kSmallSize ? small_blocks : large_blocks;
  }

  static bool should_split(const Block* block, size_t size) {
    size_t remaining = block->size - size;
    if (block->pool->is_small || g_expandable_segments) return remaining >= kMinBlockSize;
    return remaining > kSmallSize;
  }

  // Best fit: the smallest free block of the pool that holds the request.
  static bool get_free_block(AllocParams& p) {
    auto it = p.pool->blocks.lower_bound(&p.search_key);
    if (it == p.pool->blocks.end()) return false;
    p.block = *it;
    p.pool->blocks.erase(it);
    return true;
  }

  FRAME bool alloc_block(AllocParams& p, bool isRetry, const std::shared_ptr<GatheredContext>& ctx,
                         std::unique_lock<std::recursive_mutex>& lock) {
    (void)isRetry;
    (void)lock;
    if (g_expandable_segments) {
      p.block = try_allocate_expandable_block(0, nullptr, p.pool, p.size(), ctx);
      p.err = p.block ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
      KEEP_FRAME();
      return p.block != nullptr;
    }
    void* ptr = nullptr;
    p.err = cudaMallocMaybeCapturing(&ptr, p.alloc_size, p);
    KEEP_FRAME();
    if (p.err != CUDA_SUCCESS) return false;
    g_acct.obtain(t_tag, p.alloc_size);
    p.block = new Block(p.alloc_size, p.pool, static_cast<char*>(ptr));
    p.block->segment_tag = t_tag;
    return true;
  }

  FRAME Block* try_allocate_expandable_block(signed char device, CUstream stream, BlockPool* pool, size_t size,
                                             const std::shared_ptr<GatheredContext>& ctx) {
    Block* candidate = find_expandable_block(device, stream, pool, size);
    if (!candidate) return nullptr;
    if (!candidate->mapped && !map_block(candidate, std::min(candidate->size, size), ctx)) return nullptr;
    while (candidate->size < size) {
      // free mapped block followed by unmapped space: map more and merge
      Block* next = candidate->next;
      if (!map_block(next, std::min(size - candidate->size, next->size), ctx)) return nullptr;
      candidate = next;
    }
    pool->blocks.erase(candidate);
    KEEP_FRAME();
    return candidate;
  }

  static bool allocatable(const Block* b) { return b && !b->allocated; }

  FRAME Block* find_expandable_block(signed char device, CUstream stream, BlockPool* pool, size_t size) {
    for (Block* c : pool->unmapped) {
      if (allocatable(c->prev) && c->prev->mapped) c = c->prev;
      size_t bytes = 0;
      for (Block* b = c; b && bytes < size && allocatable(b); b = b->next) bytes += b->size;
      if (bytes >= size) return c;
    }
    size_t segment_size = pool->is_small ? kSmallBuffer : kLargeBuffer;
    // As PyTorch does: address space for 1 1/8 of the device's memory.
    auto* es = new ExpandableSegment(device, stream, cudart::g_total_mem + cudart::g_total_mem / 8, segment_size, {});
    if (!es->ok()) {
      delete es;
      return nullptr;
    }
    expandable_segments_.push_back(es);
    Block* candidate = new Block(es->size(), pool, es->ptr());
    candidate->mapped = false;
    candidate->expandable_segment_ = es;
    pool->unmapped.insert(candidate);
    KEEP_FRAME();
    return candidate;
  }

  FRAME bool map_block(Block* to_map, size_t size, const std::shared_ptr<GatheredContext>& ctx) {
    (void)ctx;
    SegmentRange mapped = to_map->expandable_segment_->map(SegmentRange{to_map->ptr, size});
    if (mapped.size == 0) return false;
    BlockPool& pool = *to_map->pool;
    pool.unmapped.erase(to_map);
    to_map->mapped = true;
    if (mapped.size < to_map->size) {
      Block* remaining = new Block(to_map->size - mapped.size, &pool, to_map->ptr + mapped.size);
      remaining->mapped = false;
      remaining->expandable_segment_ = to_map->expandable_segment_;
      splice(remaining, to_map, to_map->next);
      pool.unmapped.insert(remaining);
      to_map->size = mapped.size;
    }
    try_merge_blocks(to_map, to_map->prev, pool);
    try_merge_blocks(to_map, to_map->next, pool);
    pool.blocks.insert(to_map);
    KEEP_FRAME();
    return true;
  }

  static void splice(Block* b, Block* before, Block* after) {
    if (before) before->next = b;
    b->prev = before;
    if (after) after->prev = b;
    b->next = after;
  }

  static Block* alloc_found_block(AllocParams& p, bool split_remainder) {
    Block* block = p.block;
    if (split_remainder) {
      Block* remaining = block;
      block = new Block(p.size(), p.pool, remaining->ptr);
      block->expandable_segment_ = remaining->expandable_segment_;
      block->segment_tag = remaining->segment_tag;
      splice(block, remaining->prev, remaining);
      remaining->ptr += p.size();
      remaining->size -= p.size();
      p.pool->blocks.insert(remaining);
    }
    block->allocated = true;
    return block;
  }

  void free_block(Block* block) {
    BlockPool& pool = *block->pool;
    try_merge_blocks(block, block->prev, pool);
    try_merge_blocks(block, block->next, pool);
    pool.blocks.insert(block);
  }

  // Merges free neighbour src into dst (same mapping state); dst keeps the head's segment tag.
  static size_t try_merge_blocks(Block* dst, Block* src, BlockPool& pool) {
    if (!src || src->allocated || src->mapped != dst->mapped) return 0;
    if (dst->prev == src) {
      dst->ptr = src->ptr;
      dst->segment_tag = src->segment_tag;
      dst->prev = src->prev;
      if (dst->prev) dst->prev->next = dst;
    } else {
      dst->next = src->next;
      if (dst->next) dst->next->prev = dst;
    }
    size_t n = src->size;
    dst->size += n;
    if (src->mapped)
      pool.blocks.erase(src);
    else
      pool.unmapped.erase(src);
    delete src;
    return n;
  }

  // Returns whole free segments to the driver: the default pools, and the pools of graphs that
  // are all gone.
  FRAME bool release_cached_blocks() {
    release_blocks(large_blocks);
    release_blocks(small_blocks);
    for (auto it = graph_pools.begin(); it != graph_pools.end();) {
      PrivatePool* pp = it->second.get();
      if (pp->use_count == 0 && std::find(captures_underway.begin(), captures_underway.end(), it->first) == captures_underway.end()) {
        release_blocks(pp->small_blocks);
        release_blocks(pp->large_blocks);
        if (pp->small_blocks.blocks.empty() && pp->large_blocks.blocks.empty() && pp->small_blocks.unmapped.empty() &&
            pp->large_blocks.unmapped.empty()) {
          it = graph_pools.erase(it);
          continue;
        }
      }
      ++it;
    }
    KEEP_FRAME();
    return true;
  }

  void release_blocks(BlockPool& pool) {
    std::vector<Block*> to_unmap, to_free;
    for (Block* b : pool.blocks) {
      if (b->expandable_segment_)
        to_unmap.push_back(b);
      else if (!b->is_split())
        to_free.push_back(b);
    }
    for (Block* b : to_free) release_block(b);
    for (Block* b : to_unmap) {
      unmap_block(b);
      if (!b->mapped && !b->prev && !b->next) release_expandable_segment(b);
    }
  }

  FRAME void release_block(Block* block) {
    cudart::cudaApiFree(block->ptr);
    g_acct.give_back(block->segment_tag, block->size);
    block->pool->blocks.erase(block);
    delete block;
    KEEP_FRAME();
  }

  FRAME void unmap_block(Block* block) {
    BlockPool& pool = *block->pool;
    SegmentRange unmapped = block->expandable_segment_->unmap(SegmentRange{block->ptr, block->size});
    if (unmapped.size == 0) return;
    pool.blocks.erase(block);
    size_t before = unmapped.ptr - block->ptr;
    if (before > 0) {
      Block* b = new Block(before, &pool, block->ptr);
      b->expandable_segment_ = block->expandable_segment_;
      splice(b, block->prev, block);
      pool.blocks.insert(b);
    }
    size_t after = block->size - before - unmapped.size;
    if (after > 0) {
      Block* a = new Block(after, &pool, unmapped.ptr + unmapped.size);
      a->expandable_segment_ = block->expandable_segment_;
      splice(a, block, block->next);
      pool.blocks.insert(a);
    }
    block->ptr = unmapped.ptr;
    block->size = unmapped.size;
    block->mapped = false;
    try_merge_blocks(block, block->prev, pool);
    try_merge_blocks(block, block->next, pool);
    pool.unmapped.insert(block);
    KEEP_FRAME();
  }

  void release_expandable_segment(Block* block) {
    block->pool->unmapped.erase(block);
    expandable_segments_.erase(std::remove(expandable_segments_.begin(), expandable_segments_.end(), block->expandable_segment_),
                               expandable_segments_.end());
    delete block->expandable_segment_;
    delete block;
  }

  std::recursive_mutex mutex;
  BlockPool large_blocks{false};
  BlockPool small_blocks{true};
  std::map<MempoolId_t, std::unique_ptr<PrivatePool>> graph_pools;
  std::vector<MempoolId_t> captures_underway;
  std::vector<ExpandableSegment*> expandable_segments_;
};

class NativeCachingAllocator {
 public:
  FRAME void malloc(void** devPtr, signed char device, size_t size, CUstream stream) {
    Block* block = device_allocator[device].malloc(size, stream);
    if (block) {
      std::lock_guard<std::mutex> g(blocks_mutex);
      allocated_blocks[block->ptr] = block;
    }
    *devPtr = block ? block->ptr : nullptr;
    KEEP_FRAME();
  }

  FRAME void* allocate(size_t size) {
    void* devPtr = nullptr;
    this->malloc(&devPtr, 0, size, nullptr);
    KEEP_FRAME();
    return devPtr;
  }

  FRAME bool free(void* ptr) {
    Block* block;
    {
      std::lock_guard<std::mutex> g(blocks_mutex);
      auto it = allocated_blocks.find(ptr);
      if (it == allocated_blocks.end()) return false;
      block = it->second;
      allocated_blocks.erase(it);
    }
    device_allocator[0].free(block);
    KEEP_FRAME();
    return true;
  }

  void emptyCache() { device_allocator[0].emptyCache(); }
  DeviceCachingAllocator& device(int i) { return device_allocator[i]; }

 private:
  DeviceCachingAllocator device_allocator[1];
  std::mutex blocks_mutex;
  std::map<void*, Block*> allocated_blocks;
};

NativeCachingAllocator allocator;
}  // namespace Native
}  // namespace CUDACachingAllocator
}  // namespace cuda
}  // namespace c10

namespace alloc = c10::cuda::CUDACachingAllocator::Native;

// ---- the entry points the Python layer calls through ctypes -------------------------------------
extern "C" {

// Loads the driver and makes its primary context; expandable != 0 selects expandable segments.
int torchlike_init(int expandable) {
  static std::once_flag once;
  static CUresult r;
  std::call_once(once, [&] {
    alloc::g_expandable_segments = expandable != 0;
    r = cudart::globalState_initializeDriver();
  });
  return r;
}

FRAME int torchlike_empty(size_t nbytes, int tag, unsigned long long* out) {
  if (tag < 0 || tag >= kTags || nbytes == 0) return CUDA_ERROR_INVALID_VALUE;
  t_tag = tag;
  void* p = alloc::allocator.allocate(nbytes);
  KEEP_FRAME();
  if (!p) return CUDA_ERROR_OUT_OF_MEMORY;
  *out = reinterpret_cast<unsigned long long>(p);
  return CUDA_SUCCESS;
}

int torchlike_free(unsigned long long ptr) {
  return alloc::allocator.free(reinterpret_cast<void*>(ptr)) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

int torchlike_empty_cache(void) {
  alloc::allocator.emptyCache();
  return CUDA_SUCCESS;
}

int torchlike_begin_allocate_to_pool(unsigned long long id) {
  alloc::allocator.device(0).beginAllocateToPool({id, 0});
  return CUDA_SUCCESS;
}

int torchlike_end_allocate_to_pool(unsigned long long id) {
  alloc::allocator.device(0).endAllocateToPool({id, 0});
  return CUDA_SUCCESS;
}

int torchlike_release_pool(unsigned long long id) {
  alloc::allocator.device(0).releasePool({id, 0});
  return CUDA_SUCCESS;
}

int torchlike_mem_get_info(size_t* free, size_t* total) { return cudart::cudaApiMemGetInfo(free, total); }

// what: 0 bytes obtained from the driver, 1 bytes still held, 2 driver allocation calls.
unsigned long long torchlike_stat(int what, int tag) {
  if (tag < 0 || tag >= kTags || what < 0 || what > 2) return 0;
  return g_acct.read(what, tag);
}
}
