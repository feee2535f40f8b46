#!/usr/bin/env node
// Builds the native addon from source; runs on `npm install`. No prebuilt binary is fetched.
//
// In a checkout where `npm install`/`npm ci` ran (devDependencies present), it builds with the
// napi CLI, which also regenerates index.d.ts from the Rust sources (committed; CI checks that
// this leaves it unchanged). When another project installs this folder (`npm install <path>`,
// `"usage-core": "file:…"`), npm links it without installing its devDependencies, so the CLI is
// absent: then it runs `cargo build` itself and copies the library to ./usage-core.node (the
// committed index.d.ts is used as is).
//
//   USAGE_CORE_BUILD_PROFILE=debug   debug build (tests: quicker, and reuses compiled crates)
//   default                          release build
'use strict'

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.join(__dirname, '..')
const out = path.join(root, 'usage-core.node')
const profile = process.env.USAGE_CORE_BUILD_PROFILE || 'release'
if (profile !== 'release' && profile !== 'debug') {
  fail(`USAGE_CORE_BUILD_PROFILE must be "release" or "debug", got "${profile}"`, 2)
}

function fail(message, code = 1) {
  console.error(`usage-core: ${message}`)
  process.exit(code)
}

if (spawnSync('cargo', ['--version'], { encoding: 'utf8' }).status !== 0) {
  fail('building the native addon needs a Rust toolchain (cargo) on PATH: https://rustup.rs')
}

function napiCli() {
  try {
    const pkg = require.resolve('@napi-rs/cli/package.json', { paths: [root] })
    return path.join(path.dirname(pkg), require(pkg).bin.napi)
  } catch {
    return null
  }
}

function withNapiCli(cli) {
  console.error(`usage-core: building the native addon (${profile}) with the napi CLI…`)
  const args = [cli, 'build', '--no-js', '--dts', 'index.d.ts', '--output-dir', '.', '--manifest-path', 'Cargo.toml']
  if (profile === 'release') args.push('--release')
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' })
  if (r.status !== 0) fail('the native build failed (see the cargo output above)', r.status ?? 1)
}

function withCargo() {
  console.error(`usage-core: building the native addon (${profile}) with cargo…`)
  const args = ['build', '--manifest-path', path.join(root, 'Cargo.toml'), '--lib', '--message-format=json-render-diagnostics']
  if (profile === 'release') args.push('--release')
  const r = spawnSync('cargo', args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 1 << 28 })
  if (r.status !== 0) fail('the native build failed (see the cargo output above)', r.status ?? 1)
  let lib
  for (const line of r.stdout.split('\n')) {
    if (!line.startsWith('{')) continue
    const msg = JSON.parse(line)
    if (msg.reason === 'compiler-artifact' && msg.target && msg.target.name === 'usage_core_node') {
      lib = msg.filenames.find((f) => /\.(so|dylib|dll)$/.test(f)) || lib
    }
  }
  if (!lib) fail('cargo did not report the usage_core_node library')
  fs.copyFileSync(lib, `${out}.tmp`)
  fs.renameSync(`${out}.tmp`, out)
}

const cli = napiCli()
if (cli) withNapiCli(cli)
else withCargo()
