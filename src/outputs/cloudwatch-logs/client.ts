import {
  CloudWatchLogsClient,
  CreateLogGroupCommand,
  CreateLogStreamCommand,
  type InputLogEvent,
  type LogGroupClass,
  PutLogEventsCommand,
  PutRetentionPolicyCommand,
} from '@aws-sdk/client-cloudwatch-logs';
import { clientOptions, handlerOptions } from '../../aws/client-options.ts';
import type { AwsConfig } from '../../aws/config.ts';

/**
 * The SDK side of the cloudwatch_logs output. This module (and with it the CloudWatch Logs
 * client) is imported only when a `cloudwatch_logs` output starts, so configs without one never
 * load it. Calls throw what the SDK throws; the output classifies.
 */

/** What CloudWatch refused of a PutLogEvents it took (`rejectedLogEventsInfo`). */
export interface RejectedEvents {
  /** Events from here on are more than 2 hours ahead. */
  tooNewStart?: number | undefined;
  /** Events before this one are more than 14 days old. */
  tooOldEnd?: number | undefined;
  /** Events before this one are older than the group's retention. */
  expiredEnd?: number | undefined;
}

export interface GroupSettings {
  logGroupClass?: string | undefined;
  tags?: Record<string, string> | undefined;
}

export class CloudWatchLogsSender {
  private readonly client: CloudWatchLogsClient;
  private readonly emf: boolean;

  constructor(aws: AwsConfig, region: string, emf: boolean) {
    this.emf = emf;
    this.client = new CloudWatchLogsClient({
      ...clientOptions(aws, region),
      requestHandler: handlerOptions(aws),
    });
  }

  /** One PutLogEvents, without a sequence token (CloudWatch ignores them since January 2023). */
  async put(
    group: string,
    stream: string,
    logEvents: InputLogEvent[],
    signal: AbortSignal,
  ): Promise<RejectedEvents | undefined> {
    const command = new PutLogEventsCommand({ logGroupName: group, logStreamName: stream, logEvents });
    if (this.emf) {
      // Tells CloudWatch to read the events as EMF; added before signing, so it is signed too.
      command.middlewareStack.add(
        (next) => (args) => {
          const request = args.request as { headers?: Record<string, string> };
          if (request.headers) request.headers['x-amzn-logs-format'] = 'json/emf';
          return next(args);
        },
        { step: 'build', name: 'estuaryEmfHeader' },
      );
    }
    const answer = await this.client.send(command, { abortSignal: signal });
    const info = answer.rejectedLogEventsInfo;
    if (!info) return undefined;
    return {
      tooNewStart: info.tooNewLogEventStartIndex,
      tooOldEnd: info.tooOldLogEventEndIndex,
      expiredEnd: info.expiredLogEventEndIndex,
    };
  }

  async createGroup(group: string, settings: GroupSettings, signal: AbortSignal): Promise<void> {
    await this.client.send(
      new CreateLogGroupCommand({
        logGroupName: group,
        // The config schema checked the class against CloudWatch's values.
        ...(settings.logGroupClass === undefined
          ? {}
          : { logGroupClass: settings.logGroupClass as LogGroupClass }),
        ...(settings.tags === undefined ? {} : { tags: settings.tags }),
      }),
      { abortSignal: signal },
    );
  }

  async createStream(group: string, stream: string, signal: AbortSignal): Promise<void> {
    await this.client.send(new CreateLogStreamCommand({ logGroupName: group, logStreamName: stream }), {
      abortSignal: signal,
    });
  }

  async putRetention(group: string, days: number, signal: AbortSignal): Promise<void> {
    await this.client.send(new PutRetentionPolicyCommand({ logGroupName: group, retentionInDays: days }), {
      abortSignal: signal,
    });
  }

  destroy(): void {
    this.client.destroy();
  }
}
