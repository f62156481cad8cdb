{
  "target_defaults": {
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
    "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "_GNU_SOURCE"],
    "cflags": ["-Wall", "-Wextra", "-Wno-unused-parameter", "-fPIC"],
    "cflags_cc": ["-std=c++17", "-fno-exceptions"],
    "ldflags": ["-pthread"],
    "configurations": {
      "Release": { "cflags!": ["-O3"], "cflags": ["-O2"] }
    }
  },
  "targets": [
    {
      "target_name": "tunnelbyte_core",
      "type": "static_library",
      "sources": ["src/aead.cc", "src/args.cc", "src/blake2s.cc", "src/netns.cc", "src/ping.cc", "src/tun.cc", "src/tun-offload.cc", "src/udp.cc", "src/udp-offload.cc", "src/udp-shed.cc", "src/xaead.cc"]
    },
    {
      "target_name": "tunnelbyte_io",
      "sources": ["src/addon.cc"],
      "dependencies": ["tunnelbyte_core"]
    },
    {
      "target_name": "tunnelbyte_io_test",
      "sources": ["src/addon.cc", "src/test-exports.cc"],
      "defines": ["TB_TEST_EXPORTS"],
      "dependencies": ["tunnelbyte_core"]
    }
  ]
}
