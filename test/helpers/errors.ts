import { isMagflockError } from '../../src/errors/index.js'

/** The MagFlock error code a promise rejects with ('no error' when it resolves). */
export async function errorCode(p: Promise<unknown>): Promise<string> {
  try {
    await p
  } catch (err) {
    if (isMagflockError(err)) return err.code
    throw err
  }
  return 'no error'
}
