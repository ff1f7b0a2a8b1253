import { Help, type Interfaces } from '@oclif/core'

/**
 * oclif's help with one fix: it decides that a topic has children when another topic's name
 * *contains* "<topic>:", so `up` counted as a topic because "backup:create" contains "up:",
 * and `--help` listed `up` under both TOPICS and COMMANDS. Here a topic has children only
 * when a topic or command id *starts with* "<topic>:".
 */
export default class MagflockHelp extends Help {
  protected override get sortedTopics(): Interfaces.Topic[] {
    const names = [...this.config.topics.map((t) => t.name), ...this.config.commands.map((c) => c.id)]
    return super.sortedTopics.filter((t) => names.some((n) => n.startsWith(`${t.name}:`)))
  }
}
