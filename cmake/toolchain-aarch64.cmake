# Cross-compiling tulip for AArch64 Linux with Debian's gcc-aarch64-linux-gnu
# (and libc6-dev-arm64-cross); tests run under qemu-aarch64 (qemu-user).
#   cmake -S . -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64.cmake
# Binaries are linked -static so that qemu needs no target libraries; the
# -L sysroot is passed anyway for anything dynamic.
# Only the library and the plain (tiny.h) tests are built: Criterion,
# liburing and libuv are not installed for arm64, and pkg-config is pointed
# at the (normally empty) arm64 directory so the host's copies are not used.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(TULIP_CROSS_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${TULIP_CROSS_TRIPLE}-gcc)
set(CMAKE_ASM_COMPILER ${TULIP_CROSS_TRIPLE}-gcc)
set(TULIP_CROSS_SYSROOT /usr/${TULIP_CROSS_TRIPLE})

set(CMAKE_FIND_ROOT_PATH ${TULIP_CROSS_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-${CMAKE_SYSTEM_PROCESSOR} -L ${TULIP_CROSS_SYSROOT})

set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/${TULIP_CROSS_TRIPLE}/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

set(TULIP_BUILD_SHARED OFF CACHE BOOL "Also build the shared library libtulip.so")
set(TULIP_BUILD_EXAMPLES OFF CACHE BOOL "Build examples/*.c")
set(TULIP_BUILD_BENCH OFF CACHE BOOL "Build bench/*.c")
