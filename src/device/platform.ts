/** Node's names for CPU architectures mapped to the OCI / Go names bundles use. */
const ARCH: Record<string, string> = {x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64'}

/** The platform this device runs, e.g. `linux/amd64`; `--platform` or device.yaml may override it. */
export function hostPlatform(): string {
  return `linux/${ARCH[process.arch] ?? process.arch}`
}
