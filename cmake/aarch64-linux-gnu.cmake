# CMake toolchain file: cross-compile for 64-bit ARM Linux with Debian's g++-aarch64-linux-gnu,
# and run the built binaries (ctest, try_run) under qemu-user. Used by tools/arm_check.sh with
# LIBRAMIL_CORE_ONLY=ON: the libraries that build needs are OpenMP (libgomp, shipped with the
# cross compiler) and the header-only doctest and nlohmann_json.
#   cmake -S . -B build-arm -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DLIBRAMIL_CORE_ONLY=ON
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
# GCC notes that passing some std::pair arguments changed ABI in GCC 10.1 (-Wpsabi): nothing
# here links with code built by an older GCC, so the note is noise.
set(CMAKE_CXX_FLAGS_INIT -Wno-psabi)

# The target's libraries and headers: the cross toolchain's sysroot (libc6-dev-arm64-cross).
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
# Header-only packages (doctest-dev, nlohmann-json3-dev: Architecture all) live in /usr/include
# and /usr/share/cmake, which the cross compiler searches too (after its own include dir): look
# there as well. Compiled libraries stay restricted to the sysroot above.
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# ctest and try_run start target binaries through the user-mode emulator; -L names the
# sysroot that holds the ARM dynamic loader and libraries.
find_program(LIBRAMIL_QEMU_AARCH64 qemu-aarch64)
if(LIBRAMIL_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${LIBRAMIL_QEMU_AARCH64} -L /usr/aarch64-linux-gnu)
endif()
