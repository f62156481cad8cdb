{
  "targets": [
    {
      "target_name": "tunnelbyte_io",
      "sources": ["src/addon.cc", "src/aead.cc", "src/args.cc", "src/blake2s.cc", "src/netns.cc", "src/tun.cc", "src/tun-offload.cc", "src/udp.cc", "src/udp-offload.cc", "src/xaead.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "_GNU_SOURCE"],
      "cflags": ["-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags_cc": ["-std=c++17", "-fno-exceptions"],
      "ldflags": ["-pthread"],
      "configurations": {
        "Release": { "cflags!": ["-O3"], "cflags": ["-O2"] }
      }
    }
  ]
}
