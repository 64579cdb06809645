import {Flags} from '@oclif/core'
import {BaseCommand} from '../../cli/base-command.js'
import {generateKeyPair, writeKeyPair} from '../../trust/keys.js'
import {FerryError} from '../../errors.js'

export default class KeysGenerate extends BaseCommand {
  static summary = 'Create an OpenPGP key pair for signing bundles.'

  static description = `Writes OUT/NAME.pub.asc (the public key: give it to devices with "ferry device trust add" and keep it in the repository's keys/ folder) and OUT/NAME.key.asc (the private key, mode 0600: it signs bundles with "ferry bundle build --key"). The key is an OpenPGP v4 Ed25519 key, readable by gpg 2.2 and later, and its signatures are deterministic, so rebuilding a bundle from the same lock gives the same bytes.

Never commit the private key. Keep it offline, or import it into gpg (a smartcard or HSM) and sign with --gpg-key. To protect it with a passphrase, put the passphrase in an environment variable and name the variable with --passphrase-env; "ferry bundle build --key FILE --passphrase-env VAR" then unlocks it the same way.`

  static examples = [
    {description: 'Create release.pub.asc and release.key.asc in the current folder', command: '<%= config.bin %> <%= command.id %> --name release'},
    {
      description: 'A passphrase-protected key for a named signer, written to ~/ferry-keys',
      command: 'FERRY_PASSPHRASE=… <%= config.bin %> <%= command.id %> --name alice --email alice@example.org --out ~/ferry-keys --passphrase-env FERRY_PASSPHRASE',
    },
  ]

  static flags = {
    name: Flags.string({description: 'Name of the key: its user id and the start of both file names.', required: true}),
    email: Flags.string({description: 'E-mail address added to the user id.'}),
    out: Flags.string({description: 'Folder to write the two files into (created if missing).', default: '.'}),
    'passphrase-env': Flags.string({description: 'Name of an environment variable holding a passphrase to encrypt the private key with.'}),
  }

  async run(): Promise<{fingerprint: string; public: string; private: string}> {
    const {flags} = await this.parse(KeysGenerate)
    let passphrase: string | undefined
    if (flags['passphrase-env']) {
      passphrase = process.env[flags['passphrase-env']]
      if (!passphrase) {
        throw new FerryError('usage', 'PASSPHRASE_ENV_EMPTY', `environment variable ${flags['passphrase-env']} (from --passphrase-env) is not set or empty; export it with the passphrase, or leave out --passphrase-env`)
      }
    }
    const pair = await generateKeyPair({name: flags.name, email: flags.email, passphrase})
    const paths = await writeKeyPair(flags.out, flags.name, pair)
    this.say(`Created key ${pair.fingerprint}`)
    this.say(`  public key:  ${paths.public}   (share it: devices trust bundles signed by this key)`)
    this.say(`  private key: ${paths.private}   (mode 0600${passphrase ? ', passphrase-protected' : ''})`)
    this.say('Never commit the private key; keep it offline or in gpg/a smartcard, and back it up.')
    return {fingerprint: pair.fingerprint, public: paths.public, private: paths.private}
  }
}
