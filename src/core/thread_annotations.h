// Clang's thread-safety annotations (https://clang.llvm.org/docs/ThreadSafetyAnalysis.html),
// under the names of clang's documentation, defined the way Abseil's thread_annotations.h
// defines its own: attributes under clang, nothing elsewhere. A build with
// -DVIGIL_THREAD_SAFETY=ON (clang only) checks them with -Wthread-safety as errors.
//
// libstdc++'s std::mutex carries no annotations, so the analysis cannot follow
// std::lock_guard: guard state with vigil::Mutex and vigil::MutexLock (core/mutex.h).
//
//   class Cache {
//    public:
//     void Put(std::string key) EXCLUDES(mu_);
//    private:
//     void EvictLocked() REQUIRES(mu_);
//     Mutex mu_;
//     std::map<std::string, int> entries_ GUARDED_BY(mu_);
//   };
#ifndef VIGIL_CORE_THREAD_ANNOTATIONS_H_
#define VIGIL_CORE_THREAD_ANNOTATIONS_H_

#if defined(__clang__)
#define VIGIL_THREAD_ANNOTATION_ATTRIBUTE_(x) __attribute__((x))
#else
#define VIGIL_THREAD_ANNOTATION_ATTRIBUTE_(x)  // no-op
#endif

// On a class: its objects are capabilities (locks), e.g. CAPABILITY("mutex").
#define CAPABILITY(x) VIGIL_THREAD_ANNOTATION_ATTRIBUTE_(capability(x))

// On a class: an RAII object that acquires a capability in its constructor and releases it in
// its destructor.
#define SCOPED_CAPABILITY VIGIL_THREAD_ANNOTATION_ATTRIBUTE_(scoped_lockable)

// On a data member or global: reads and writes need the capability x held.
#define GUARDED_BY(x) VIGIL_THREAD_ANNOTATION_ATTRIBUTE_(guarded_by(x))

// On a pointer member or global: what it points to needs the capability x held.
#define PT_GUARDED_BY(x) VIGIL_THREAD_ANNOTATION_ATTRIBUTE_(pt_guarded_by(x))

// On a capability member: the order in which capabilities must be acquired.
#define ACQUIRED_BEFORE(...) VIGIL_THREAD_ANNOTATION_ATTRIBUTE_(acquired_before(__VA_ARGS__))
#define ACQUIRED_AFTER(...) VIGIL_THREAD_ANNOTATION_ATTRIBUTE_(acquired_after(__VA_ARGS__))

// On a function: the caller must hold the capabilities (exclusively, or at least shared).
#define REQUIRES(...) VIGIL_THREAD_ANNOTATION_ATTRIBUTE_(requires_capability(__VA_ARGS__))
#define REQUIRES_SHARED(...) \
  VIGIL_THREAD_ANNOTATION_ATTRIBUTE_(requires_shared_capability(__VA_ARGS__))

// On a function: it acquires the capabilities and returns holding them (no argument: `this`).
#define ACQUIRE(...) VIGIL_THREAD_ANNOTATION_ATTRIBUTE_(acquire_capability(__VA_ARGS__))
#define ACQUIRE_SHARED(...) \
  VIGIL_THREAD_ANNOTATION_ATTRIBUTE_(acquire_shared_capability(__VA_ARGS__))

// On a function: it releases the capabilities the caller held (no argument: `this`).
#define RELEASE(...) VIGIL_THREAD_ANNOTATION_ATTRIBUTE_(release_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) \
  VIGIL_THREAD_ANNOTATION_ATTRIBUTE_(release_shared_capability(__VA_ARGS__))

// On a function: it tries to acquire the capabilities; the first argument is the return value
// that means success.
#define TRY_ACQUIRE(...) VIGIL_THREAD_ANNOTATION_ATTRIBUTE_(try_acquire_capability(__VA_ARGS__))

// On a function: the caller must not hold the capabilities (the function acquires them).
#define EXCLUDES(...) VIGIL_THREAD_ANNOTATION_ATTRIBUTE_(locks_excluded(__VA_ARGS__))

// On a function: it checks at run time that the calling thread holds the capability, and the
// analysis assumes so after the call.
#define ASSERT_CAPABILITY(x) VIGIL_THREAD_ANNOTATION_ATTRIBUTE_(assert_capability(x))

// On a function: it returns a reference to the capability x.
#define RETURN_CAPABILITY(x) VIGIL_THREAD_ANNOTATION_ATTRIBUTE_(lock_returned(x))

// On a function: the analysis skips its body. Say why beside each use.
#define NO_THREAD_SAFETY_ANALYSIS VIGIL_THREAD_ANNOTATION_ATTRIBUTE_(no_thread_safety_analysis)

#endif  // VIGIL_CORE_THREAD_ANNOTATIONS_H_
