# STRATA_CPU_TARGET: the instruction set strata's own code is compiled for
# (docs/running-on-clusters.md, "Which CPU to build for").
#
#   native            the build machine's CPU (-march=native / -mcpu=native): a workstation
#   x86-64-v3         AVX2 + FMA (Haswell 2013+, Zen 1+): every current x86 cluster node
#   x86-64-v4         AVX-512 F/BW/CD/DQ/VL (Skylake-SP+, Zen 4+)
#   x86-64-v2, x86-64 older levels; `generic` adds no flag (the compiler's default)
#   <x86 CPU name>    -march=<name>: znver4, sapphirerapids, icelake-server, ...
#   <Arm CPU name>    -mcpu=<name>: neoverse-v2 (Grace), neoverse-v1, neoverse-n1, a64fx, ...
#   armv8.2-a+sve...  -march=<value> on Arm
#
# Default: x86-64-v3 on x86-64, generic on Arm and elsewhere, so a build made on a login node
# runs on the compute nodes. Whatever the target, the parts where the vector width decides the
# result choose at run time: the GEMMs (BLAS dispatches on the running CPU) and the fp32 peak
# probe (one variant per instruction set, kernels/cpu/peak.cpp).
#
# Sets: STRATA_CPU_FLAGS (compile options for strata's C++ code), STRATA_CPU_FEATURES (the x86
# features those flags assume, as __builtin_cpu_supports names: the start-up check of the
# strata binary refuses a CPU that lacks one, with a message instead of SIGILL).

if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64|i[3-6]86)$")
  set(_strata_arch x86)
  set(_strata_default x86-64-v3)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64|ARM64)$")
  set(_strata_arch arm)
  set(_strata_default generic)
else()
  set(_strata_arch other)
  set(_strata_default generic)
endif()

if(DEFINED CACHE{STRATA_NATIVE})
  message(WARNING "STRATA_NATIVE is gone; use -DSTRATA_CPU_TARGET=native (or a named level, "
                  "docs/running-on-clusters.md). Ignoring STRATA_NATIVE=${STRATA_NATIVE}.")
  unset(STRATA_NATIVE CACHE)
endif()

set(STRATA_CPU_TARGET "${_strata_default}" CACHE STRING
    "CPU the code is compiled for: native, generic, x86-64-v3, x86-64-v4, a -march name, or an Arm -mcpu name (neoverse-v2)")
set_property(CACHE STRATA_CPU_TARGET PROPERTY STRINGS native generic x86-64 x86-64-v2 x86-64-v3 x86-64-v4 neoverse-v2)

set(_t "${STRATA_CPU_TARGET}")
if(_t STREQUAL "generic" OR _t STREQUAL "")
  set(STRATA_CPU_FLAGS "")
elseif(_t STREQUAL "native")
  if(_strata_arch STREQUAL "arm")
    set(STRATA_CPU_FLAGS -mcpu=native)
  else()
    set(STRATA_CPU_FLAGS -march=native)
  endif()
elseif(_strata_arch STREQUAL "arm" AND NOT _t MATCHES "^armv")
  set(STRATA_CPU_FLAGS -mcpu=${_t})
else()
  set(STRATA_CPU_FLAGS -march=${_t})
endif()

if(STRATA_CPU_FLAGS)
  include(CheckCXXCompilerFlag)
  string(MAKE_C_IDENTIFIER "STRATA_CPU_FLAG_OK_${_t}" _ok)
  check_cxx_compiler_flag("${STRATA_CPU_FLAGS}" ${_ok})
  if(NOT ${_ok})
    message(FATAL_ERROR "STRATA_CPU_TARGET=${_t}: ${CMAKE_CXX_COMPILER_ID} ${CMAKE_CXX_COMPILER_VERSION} rejects "
                        "'${STRATA_CPU_FLAGS}'. Use native, generic, x86-64-v3, x86-64-v4, a -march CPU name "
                        "(x86) or an -mcpu name such as neoverse-v2 (Arm).")
  endif()
endif()

# The x86 features the flags switch on, read from the compiler's predefined macros.
set(STRATA_CPU_FEATURES "")
if(_strata_arch STREQUAL "x86")
  execute_process(COMMAND ${CMAKE_CXX_COMPILER} ${STRATA_CPU_FLAGS} -dM -E -x c++ /dev/null
                  OUTPUT_VARIABLE _macros ERROR_QUIET RESULT_VARIABLE _rc)
  if(_rc EQUAL 0)
    # macro -> __builtin_cpu_supports name (GCC >= 11, Clang >= 11)
    foreach(_pair SSE4_2:sse4.2 POPCNT:popcnt AVX:avx AVX2:avx2 FMA:fma BMI:bmi BMI2:bmi2 AVX512F:avx512f
                  AVX512BW:avx512bw AVX512DQ:avx512dq AVX512VL:avx512vl AVX512CD:avx512cd AVX512VNNI:avx512vnni
                  AVX512BF16:avx512bf16 AVX512VBMI:avx512vbmi AVX512VBMI2:avx512vbmi2 AVX512IFMA:avx512ifma
                  AVX512BITALG:avx512bitalg AVX512VPOPCNTDQ:avx512vpopcntdq AVX512FP16:avx512fp16 GFNI:gfni
                  VAES:vaes VPCLMULQDQ:vpclmulqdq)
      string(REPLACE ":" ";" _pair "${_pair}")
      list(GET _pair 0 _macro)
      list(GET _pair 1 _name)
      if(_macros MATCHES "#define __${_macro}__ 1")
        list(APPEND STRATA_CPU_FEATURES ${_name})
      endif()
    endforeach()
  endif()
endif()
string(REPLACE ";" " " _flags_text "${STRATA_CPU_FLAGS}")
string(REPLACE ";" " " _features_text "${STRATA_CPU_FEATURES}")
message(STATUS "strata: CPU target ${_t} (${_flags_text}); x86 features assumed: ${_features_text}")
set(STRATA_CPU_FLAGS_TEXT "${_flags_text}")
