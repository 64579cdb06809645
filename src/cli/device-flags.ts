import {Flags} from '@oclif/core'

/** Flags of the device verbs that reach containerd, so their names and help stay the same everywhere. */
export const containerdAddressFlag = Flags.string({
  description: 'containerd socket to import images through. Default: $CONTAINERD_ADDRESS, else containerd.address in device.yaml.',
})

export const namespaceFlag = Flags.string({
  description: 'containerd namespace for the images (default: device.yaml, else k8s.io, the one Kubernetes reads).',
})
