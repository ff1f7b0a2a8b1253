import { Flags } from '@oclif/core'
import { SYSTEM_UNIT_DIR } from './install.js'

/** Flags every `magflock service …` command takes. */
export const serviceFlags = {
  name: Flags.string({ summary: 'Unit name (without .service).', default: 'magflock' }),
  'unit-dir': Flags.string({ summary: `Directory of the unit file (default ${SYSTEM_UNIT_DIR}); systemctl runs only for the default.` }),
}
