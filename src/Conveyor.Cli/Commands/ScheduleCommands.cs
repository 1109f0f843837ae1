using System.CommandLine;
using System.Text.Json;
using Conveyor.Cli.CommandLine;
using Conveyor.Cli.Output;

namespace Conveyor.Cli.Commands;

// Inside the namespace on purpose, as in QueueCommands: the client's wire types must win over Core's.
using Conveyor.Client;

internal sealed record ScheduleSetOptions(
    string Name, string Cron, string Queue, string? TimeZone, string? Kind, JsonElement? Payload, int? Priority, int? MaxAttempts, bool Paused, bool Json);

internal sealed record ScheduleNameOptions(string Name, bool Json);

/// <summary><c>conveyor schedule set|list|delete</c>: cron schedules that enqueue a job at each occurrence.</summary>
internal static class ScheduleCommands
{
    public delegate void ClientActionBinder<TOptions>(
        Command command, Func<ParseResult, TOptions> bind, Func<ConveyorClient, TOptions, TextWriter, CancellationToken, Task<int>> run);

    public static Command Build(ClientActionBinder<ScheduleSetOptions> bindSet, ClientActionBinder<ListOptions> bindList,
        ClientActionBinder<ScheduleNameOptions> bindName)
    {
        var name = new Argument<string>("name") { Description = "The schedule's name (letters, digits, . _ - :)." };
        var cron = new Option<string>("--cron") { Description = "5 fields (minute hour day month weekday) or 6 with seconds first, e.g. '0 3 * * *'", Required = true };
        var queue = new Option<string>("--queue") { Description = "The queue each occurrence's job goes to", Required = true };
        var zone = Options.String("--time-zone", "IANA time zone the cron fields are read in [default: UTC]");
        var kind = Options.String("--kind", "The job's kind [default: default]");
        var payload = Options.JsonValue("--payload", "The job's payload as JSON");
        var priority = Options.Int("--priority", "Higher runs first, -1000 to 1000 [default: 0]");
        var attempts = Options.Int("--max-attempts", "Attempts before a job is dead [default: 25]", 1);
        var paused = Options.Flag("--paused", "Store the schedule without firing it");
        var setJson = Options.Json();
        var set = new Command("set", "Create or replace a schedule.") { name, cron, queue, zone, kind, payload, priority, attempts, paused, setJson };
        bindSet(set, r => new ScheduleSetOptions(r.GetRequiredValue(name), r.GetRequiredValue(cron), r.GetRequiredValue(queue), r.GetValue(zone),
            r.GetValue(kind), r.GetValue(payload), r.GetValue(priority), r.GetValue(attempts), r.GetValue(paused), r.GetValue(setJson)), SetAsync);

        var listJson = Options.Json();
        var list = new Command("list", "List schedules with their next run.") { listJson };
        bindList(list, r => new ListOptions(r.GetValue(listJson)), ListAsync);

        var deleteName = new Argument<string>("name") { Description = "The schedule's name." };
        var delete = new Command("delete", "Delete a schedule (jobs it already enqueued stay).") { deleteName };
        bindName(delete, r => new ScheduleNameOptions(r.GetRequiredValue(deleteName), false), DeleteAsync);

        return new Command("schedule", "Cron schedules: each occurrence enqueues one job, exactly once.") { set, list, delete };
    }

    private static async Task<int> SetAsync(ConveyorClient client, ScheduleSetOptions o, TextWriter output, CancellationToken cancellationToken)
    {
        var schedule = await client.PutScheduleAsync(o.Name, new ScheduleRequest
        {
            Cron = o.Cron,
            Queue = o.Queue,
            TimeZone = o.TimeZone,
            Paused = o.Paused,
            Job = new ScheduleJob { Kind = o.Kind, Payload = o.Payload, Priority = o.Priority, MaxAttempts = o.MaxAttempts },
        }, cancellationToken).ConfigureAwait(false);
        if (o.Json) Text.WriteJson(output, schedule, OutputJsonContext.Terminal.ScheduleInfo);
        else output.WriteLine($"schedule '{schedule.Name}' set: {schedule.Cron} ({schedule.TimeZone}) → queue '{schedule.Queue}', next run {Text.Time(schedule.NextRunAt)}");
        return ExitCodes.Success;
    }

    private static async Task<int> ListAsync(ConveyorClient client, ListOptions o, TextWriter output, CancellationToken cancellationToken)
    {
        var schedules = await client.ListSchedulesAsync(cancellationToken).ConfigureAwait(false);
        if (o.Json)
        {
            Text.WriteJson(output, schedules, OutputJsonContext.Terminal.IReadOnlyListScheduleInfo);
        }
        else if (schedules.Count == 0)
        {
            output.WriteLine("no schedules: create one with `conveyor schedule set <name> --cron '0 3 * * *' --queue <queue>`");
        }
        else
        {
            var table = new TextTable("NAME", "CRON", "TIME ZONE", "QUEUE", "KIND", "NEXT RUN", "LAST FIRED");
            foreach (var s in schedules)
                table.Add(s.Name, s.Cron, s.TimeZone, s.Queue, s.Job.Kind ?? "default", s.Paused ? "paused" : Text.Time(s.NextRunAt), Text.Time(s.LastFiredFor));
            table.WriteTo(output);
        }
        return ExitCodes.Success;
    }

    private static async Task<int> DeleteAsync(ConveyorClient client, ScheduleNameOptions o, TextWriter output, CancellationToken cancellationToken)
    {
        await client.DeleteScheduleAsync(o.Name, cancellationToken).ConfigureAwait(false);
        output.WriteLine($"schedule '{o.Name}' deleted");
        return ExitCodes.Success;
    }
}
