# Cross-compile the runner for linux-aarch64 (glibc) with Debian's g++-aarch64-linux-gnu, against the
# aarch64 executorch wheel (`make native-arm64`; run it with qemu-aarch64-static -L /usr/aarch64-linux-gnu).
#   cmake -S android_harness/native -B build/native/linux-aarch64 \
#         -DCMAKE_TOOLCHAIN_FILE=android_harness/native/cmake/aarch64-linux-gnu.toolchain.cmake \
#         -DCMAKE_PREFIX_PATH=<unzipped aarch64 wheel>/executorch
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(_triple aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${_triple}-gcc)
set(CMAKE_CXX_COMPILER ${_triple}-g++)
set(CMAKE_FIND_ROOT_PATH /usr/${_triple})
# Programs (flatc) run here; the executorch package (an absolute CMAKE_PREFIX_PATH) and the
# header-only flatbuffers headers are looked up as given, the target's libraries in its sysroot too.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
# CMake runs target programs (try_run) through the emulator when one is set.
find_program(_qemu qemu-aarch64-static)
if(_qemu)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${_qemu} -L /usr/${_triple})
endif()
