/**
 * Secrets as the kernel and every domain see them (vault or OS keychain behind it).
 * Re-exported by src/kernel/services.ts for domains.
 */
export interface SecretStore {
  get(name: string): Promise<string | undefined>
  set(name: string, value: string): Promise<void>
  delete(name: string): Promise<boolean>
  list(): Promise<string[]>
}
