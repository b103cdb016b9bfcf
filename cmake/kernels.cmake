# Per-ISA compile flags for src/kernels/<isa>/*.cc (included after lowbit_module(kernels ...)).
# The default build never tunes for the build machine (march=native): each ISA's kernels live in
# their own translation units, compiled for that ISA only, and dispatch.cc picks a table at run
# time (cpuid).
file(GLOB LOWBIT_KERNELS_AVX2 CONFIGURE_DEPENDS "${CMAKE_SOURCE_DIR}/src/kernels/avx2/*.cc")
file(GLOB LOWBIT_KERNELS_AVX512 CONFIGURE_DEPENDS "${CMAKE_SOURCE_DIR}/src/kernels/avx512/*.cc")
file(GLOB LOWBIT_KERNELS_REF CONFIGURE_DEPENDS "${CMAKE_SOURCE_DIR}/src/kernels/ref/*.cc")
# -Wno-(maybe-)uninitialized: GCC 12's own avx512fintrin.h trips them (_mm512_undefined_*, GCC
# bug 105593), drowning real warnings.
set(LOWBIT_AVX512_FLAGS -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq
    -Wno-uninitialized -Wno-maybe-uninitialized)
target_sources(lowbit_kernels PRIVATE ${LOWBIT_KERNELS_REF} ${LOWBIT_KERNELS_AVX2} ${LOWBIT_KERNELS_AVX512})
set_source_files_properties(${LOWBIT_KERNELS_AVX2} PROPERTIES COMPILE_OPTIONS "-mavx2;-mfma;-mf16c")
foreach(f ${LOWBIT_KERNELS_AVX512})
  # VNNI instructions only in the *_vnni_*.cc files, which run only when cpuid reports AVX512-VNNI
  # (so the compiler cannot slip vpdpbusd into the plain AVX-512 kernels).
  if(f MATCHES "_amx_[^/]*\\.cc$")
    # AMX tile instructions only in *_amx_*.cc, which run only when cpuid reports AMX-INT8 and the
    # kernel has granted the tile state (dispatch.cc).
    set_source_files_properties(${f} PROPERTIES COMPILE_OPTIONS "${LOWBIT_AVX512_FLAGS};-mavx512vnni;-mamx-tile;-mamx-int8")
  elseif(f MATCHES "_vnni_[^/]*\\.cc$")
    set_source_files_properties(${f} PROPERTIES COMPILE_OPTIONS "${LOWBIT_AVX512_FLAGS};-mavx512vnni")
  else()
    set_source_files_properties(${f} PROPERTIES COMPILE_OPTIONS "${LOWBIT_AVX512_FLAGS}")
  endif()
endforeach()
