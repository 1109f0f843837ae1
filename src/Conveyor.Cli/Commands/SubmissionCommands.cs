using System.CommandLine;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Conveyor.Cli.CommandLine;
using Conveyor.Cli.Output;
using Spectre.Console;
using Text = Conveyor.Cli.Output.Text;

namespace Conveyor.Cli.Commands;

// Inside the namespace on purpose, as in QueueCommands: the client's wire types must win over Core's.
using Conveyor.Client;

internal sealed record SubmitOptions(
    string Queue, string File, int? ChunkSize, IReadOnlyDictionary<string, long>? Labels, JsonElement? Metadata, int? MaxChunkRetries,
    bool Wait, TimeSpan? Timeout, bool Json);

internal sealed record SubmissionShowOptions(long Id, bool Results, bool Partial, bool Cancel, bool Json);

/// <summary>
/// <c>conveyor submit</c> (an NDJSON file streamed as a submission, optionally waited for with a progress bar) and
/// <c>conveyor submission &lt;id&gt;</c> (state and progress, <c>--results</c> as NDJSON, <c>--cancel</c>).
/// </summary>
internal static class SubmissionCommands
{
    /// <summary>How often <c>--wait</c> asks the server; plain output prints a line at most this often, when progress moved.</summary>
    internal static TimeSpan PollInterval { get; set; } = TimeSpan.FromMilliseconds(500);

    private static readonly TimeSpan PlainLineEvery = TimeSpan.FromSeconds(2);

    public static Command BuildSubmit(ScheduleCommands.ClientActionBinder<SubmitOptions> bind)
    {
        var queue = Options.Queue();
        var file = new Argument<string>("file")
        {
            Description = "NDJSON file: each line is one chunk's JSON data (blank lines skipped); '-' reads stdin. Streamed, never loaded whole.",
        };
        var chunkSize = Options.Int("--chunk-size", "Operations per chunk, for progress [default: 1]", 1, 100_000_000);
        var labels = new Option<string[]>("--label")
        {
            Description = "A label as name=integer (e.g. company_id=42), for lookup and fair reservation; repeat for several",
            Arity = ArgumentArity.ZeroOrMore,
        };
        labels.Validators.Add(result =>
        {
            var names = new HashSet<string>(StringComparer.Ordinal);
            foreach (var text in result.GetValueOrDefault<string[]>() ?? [])
            {
                if (!TryParseLabel(text, out var name, out _))
                {
                    result.AddError($"--label must be name=integer such as company_id=42, got '{text}'.");
                    return;
                }

                if (!names.Add(name))
                {
                    result.AddError($"--label '{name}' is given twice; a label has one value.");
                    return;
                }
            }
        });
        var metadata = Options.JsonValue("--metadata", "Opaque JSON kept with the submission, e.g. '{\"file\":\"2026-11.csv\"}'");
        var retries = Options.Int("--max-chunk-retries", "Retries per chunk before the submission fails, 0 to 1000 [default: 10]", 0, 1000);
        var wait = Options.Flag("--wait", "Wait until the submission finishes, showing progress (a bar on a terminal); exit 1 if it fails");
        var timeout = Options.Int("--timeout", "With --wait, give up after this many seconds (exit 1) [default: no limit]", 1);
        var json = Options.Json();

        var command = new Command(
            "submit",
            "Submit a large piece of work as chunks: a submission that chunk workers process in parallel. "
            + "Prints its id; see it with `conveyor submission <id>`.")
        {
            queue, file, chunkSize, labels, metadata, retries, wait, timeout, json,
        };
        command.Validators.Add(result =>
        {
            if (result.GetResult(timeout) is not null && !result.GetValue(wait))
            {
                result.AddError("--timeout only applies with --wait.");
            }
        });
        bind(command, r => new SubmitOptions(
            r.GetRequiredValue(queue),
            CheckFile(r.GetRequiredValue(file)),
            r.GetValue(chunkSize),
            r.GetValue(labels) is { Length: > 0 } given ? given.ToDictionary(Label, Value, StringComparer.Ordinal) : null,
            r.GetValue(metadata),
            r.GetValue(retries),
            r.GetValue(wait),
            r.GetValue(timeout) is { } seconds ? TimeSpan.FromSeconds(seconds) : null,
            r.GetValue(json)), SubmitAsync);
        return command;
    }

    public static Command BuildShow(ScheduleCommands.ClientActionBinder<SubmissionShowOptions> bind)
    {
        var id = new Argument<long>("id")
        {
            Description = "The submission's id.",
            CustomParser = result =>
            {
                var text = result.Tokens[0].Value;
                if (Options.TryParseLong(text, 1, long.MaxValue, out var value)) return value;
                result.AddError($"The submission id must be {Options.Range(1, long.MaxValue)}, got '{text}'.");
                return 0;
            },
        };
        var results = Options.Flag("--results", "Print the results as NDJSON, one line per chunk in chunk order (streamed)");
        var partial = Options.Flag("--partial", "With --results: the chunks done so far, before the submission completed");
        var cancel = Options.Flag("--cancel", "Cancel the submission: its remaining chunks are skipped");
        var json = Options.Json();
        var command = new Command("submission", "Show a submission's state and progress, its results (--results), or cancel it (--cancel).")
        {
            id, results, partial, cancel, json,
        };
        command.Validators.Add(result =>
        {
            if (result.GetValue(results) && result.GetValue(cancel)) result.AddError("Give --results or --cancel, not both.");
            if (result.GetValue(partial) && !result.GetValue(results)) result.AddError("--partial only applies with --results.");
        });
        bind(command, r => new SubmissionShowOptions(
            r.GetValue(id), r.GetValue(results), r.GetValue(partial), r.GetValue(cancel), r.GetValue(json)), ShowAsync);
        return command;
    }

    internal static async Task<int> SubmitAsync(ConveyorClient client, SubmitOptions o, TextWriter output, CancellationToken cancellationToken)
    {
        var options = new SubmissionOptions
        {
            ChunkSize = o.ChunkSize, Labels = o.Labels, Metadata = o.Metadata, MaxChunkRetries = o.MaxChunkRetries,
        };
        var submission = await client.SubmitAsync(o.Queue, ReadLines(o.File, cancellationToken), options, cancellationToken).ConfigureAwait(false);
        if (!o.Wait)
        {
            if (o.Json) Text.WriteJson(output, submission, SubmissionOutputJson.Terminal.SubmissionInfo);
            else output.WriteLine($"submitted submission {submission.Id} to '{submission.Queue}': {Text.Number(submission.ChunksTotal)} chunks ({submission.State})");
            return ExitCodes.Success;
        }

        if (!o.Json) output.WriteLine($"submitted submission {submission.Id} to '{submission.Queue}': {Text.Number(submission.ChunksTotal)} chunks");
        var timeout = o.Timeout ?? TimeSpan.FromDays(3650);
        SubmissionInfo finished;
        try
        {
            finished = o.Json
                ? await client.WaitForSubmissionAsync(submission.Id, timeout, null, PollInterval, cancellationToken).ConfigureAwait(false)
                : IsTerminal(output)
                    ? await WaitWithBarAsync(client, submission, timeout, cancellationToken).ConfigureAwait(false)
                    : await WaitWithLinesAsync(client, submission, timeout, output, cancellationToken).ConfigureAwait(false);
        }
        catch (SubmissionFailedException failed)
        {
            // The server answered; the submission did not make it: exit 1 as for any refusal, with the reason.
            if (o.Json) Text.WriteJson(output, failed.Submission, SubmissionOutputJson.Terminal.SubmissionInfo);
            throw new SubmissionEndedException(failed.Message);
        }
        catch (SubmissionWaitTimeoutException timedOut)
        {
            throw new SubmissionEndedException(timedOut.Message);
        }

        if (o.Json) Text.WriteJson(output, finished, SubmissionOutputJson.Terminal.SubmissionInfo);
        else output.WriteLine($"submission {finished.Id} completed: {Text.Number(finished.ChunksDone)} chunks, {Text.Number(finished.OperationsDone)} operations");
        return ExitCodes.Success;
    }

    internal static async Task<int> ShowAsync(ConveyorClient client, SubmissionShowOptions o, TextWriter output, CancellationToken cancellationToken)
    {
        if (o.Results)
        {
            await foreach (var line in client.ReadResultsAsync(o.Id, o.Partial, cancellationToken).ConfigureAwait(false))
            {
                output.Write(JsonSerializer.Serialize(line, SubmissionOutputJson.Lines.ChunkResult));
                output.Write('\n');
            }

            return ExitCodes.Success;
        }

        if (o.Cancel)
        {
            var cancelled = await client.CancelSubmissionAsync(o.Id, cancellationToken).ConfigureAwait(false);
            if (o.Json) Text.WriteJson(output, cancelled, SubmissionOutputJson.Terminal.SubmissionInfo);
            else output.WriteLine($"submission {cancelled.Id} cancelled ({Text.Number(cancelled.ChunksDone)} of {Text.Number(cancelled.ChunksTotal)} chunks done)");
            return ExitCodes.Success;
        }

        var submission = await client.GetSubmissionAsync(o.Id, cancellationToken).ConfigureAwait(false);
        if (o.Json)
        {
            Text.WriteJson(output, submission, SubmissionOutputJson.Terminal.SubmissionInfo);
            return ExitCodes.Success;
        }

        Text.WriteFields(output,
        [
            ("id", Text.Number(submission.Id)),
            ("queue", submission.Queue),
            ("state", submission.State),
            ("progress", Progress(submission)),
            ("operations", Text.Number(submission.OperationsDone) + $" (chunk size {Text.Number(submission.ChunkSize)})"),
            ("chunks", $"{Text.Number(submission.ChunksReady)} ready, {Text.Number(submission.ChunksReserved)} reserved, "
                + $"{Text.Number(submission.ChunksFailed)} failed"),
            ("failed chunk", submission.FailedChunk is { } failed ? $"{Text.Number(failed.Index)}: {Text.OneLine(failed.Error)}" : Text.None),
            ("labels", submission.Labels.Count == 0 ? Text.None : string.Join(", ", submission.Labels.Select(l => $"{l.Key}={Text.Number(l.Value)}"))),
            ("metadata", Text.Json(submission.Metadata, 200)),
            ("prefix", submission.Prefix ?? Text.None),
            ("on complete", submission.OnComplete is { } callback ? $"{callback.Kind} → queue '{callback.Queue}'" : Text.None),
            ("max retries", Text.Number(submission.MaxChunkRetries)),
            ("created", Text.Time(submission.CreatedAt)),
            ("finished", Text.Time(submission.FinishedAt)),
        ]);
        return ExitCodes.Success;
    }

    private static string Progress(SubmissionInfo s) =>
        $"{Text.Number(s.ChunksDone)}/{Text.Number(s.ChunksTotal)} chunks ("
        + (s.ChunksTotal == 0 ? 100.0 : 100.0 * s.ChunksDone / s.ChunksTotal).ToString("0.0", CultureInfo.InvariantCulture) + "%)";

    private static bool IsTerminal(TextWriter output) => ReferenceEquals(output, Console.Out) && !Console.IsOutputRedirected;

    private static async Task<SubmissionInfo> WaitWithBarAsync(
        ConveyorClient client, SubmissionInfo submission, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Out) });
        return await console.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .StartAsync(async context =>
            {
                var bar = context.AddTask($"submission {submission.Id}", maxValue: Math.Max(1, submission.ChunksTotal));
                var progress = new Reporter(p =>
                {
                    bar.Value = p.ChunksTotal == 0 ? 1 : p.ChunksDone;
                    bar.Description = $"submission {p.SubmissionId}: {Text.Number(p.ChunksDone)}/{Text.Number(p.ChunksTotal)} chunks"
                        + (p.ChunksFailed > 0 ? $", {Text.Number(p.ChunksFailed)} failed" : "");
                });
                try
                {
                    return await client.WaitForSubmissionAsync(submission.Id, timeout, progress, PollInterval, cancellationToken).ConfigureAwait(false);
                }
                finally
                {
                    bar.StopTask();
                }
            }).ConfigureAwait(false);
    }

    private static async Task<SubmissionInfo> WaitWithLinesAsync(
        ConveyorClient client, SubmissionInfo submission, TimeSpan timeout, TextWriter output, CancellationToken cancellationToken)
    {
        // Not a terminal (a log, a pipe): a line when progress moved, at most every couple of seconds.
        long lastDone = -1;
        var lastLine = DateTimeOffset.MinValue;
        var progress = new Reporter(p =>
        {
            var now = DateTimeOffset.UtcNow;
            if (p.ChunksDone != lastDone && now - lastLine >= PlainLineEvery && p.State == "in_progress")
            {
                output.WriteLine($"submission {p.SubmissionId}: {Text.Number(p.ChunksDone)}/{Text.Number(p.ChunksTotal)} chunks, "
                    + $"{Text.Number(p.OperationsDone)} operations");
                lastDone = p.ChunksDone;
                lastLine = now;
            }
        });
        return await client.WaitForSubmissionAsync(submission.Id, timeout, progress, PollInterval, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The file's lines as chunks, read as they are sent: the file is never held whole.</summary>
    private static async IAsyncEnumerable<SubmissionChunk> ReadLines(string file, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        Stream stream;
        try
        {
            stream = file == "-" ? Console.OpenStandardInput() : new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 64 * 1024, useAsync: true);
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"The file '{file}' cannot be read ({exception.Message.TrimEnd('.')}). Nothing was submitted.");
        }

        using var reader = new StreamReader(stream, Encoding.UTF8);
        var number = 0L;
        while (await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false) is { } line)
        {
            number++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            JsonElement data;
            try
            {
                using var document = JsonDocument.Parse(line);
                data = document.RootElement.Clone();
            }
            catch (JsonException exception)
            {
                // Nothing was created: the server refuses a body that ends early, so the whole submission is off.
                throw new UsageException(
                    $"{(file == "-" ? "stdin" : file)} line {Text.Number(number)} is not valid JSON ({exception.Message.Split(" LineNumber:")[0].TrimEnd()}); "
                    + "each line must be one chunk's JSON data. Nothing was submitted.");
            }

            yield return SubmissionChunk.FromJson(data);
        }
    }

    private static string CheckFile(string file) =>
        file == "-" || File.Exists(file)
            ? file
            : throw new UsageException($"The file '{file}' does not exist; give an NDJSON file with one chunk's JSON per line, or '-' for stdin.");

    private static bool TryParseLabel(string text, out string name, out long value)
    {
        var equals = text.IndexOf('=', StringComparison.Ordinal);
        name = equals > 0 ? text[..equals] : "";
        value = 0;
        return equals > 0 && Options.TryParseLong(text[(equals + 1)..], long.MinValue, long.MaxValue, out value);
    }

    private static string Label(string text) => TryParseLabel(text, out var name, out _) ? name : text;

    private static long Value(string text) => TryParseLabel(text, out _, out var value) ? value : 0;

    /// <summary>IProgress that reports on the polling thread, in order (Progress&lt;T&gt; would post to the thread pool).</summary>
    private sealed class Reporter(Action<SubmissionProgress> report) : IProgress<SubmissionProgress>
    {
        public void Report(SubmissionProgress value) => report(value);
    }
}

/// <summary>A waited-for submission failed, was cancelled or ran out of time: exit 1 with the reason, as a refusal.</summary>
internal sealed class SubmissionEndedException(string message) : ConveyorException(message, System.Net.HttpStatusCode.Conflict);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true)]
[JsonSerializable(typeof(SubmissionInfo))]
[JsonSerializable(typeof(ChunkResult))]
internal sealed partial class SubmissionOutputJson : JsonSerializerContext
{
    /// <summary>The --json output: indented, every field kept, non-ASCII left readable (as OutputJsonContext.Terminal).</summary>
    public static SubmissionOutputJson Terminal { get; } = new(new JsonSerializerOptions
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        NewLine = "\n",
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });

    /// <summary>Result lines as the server writes them: one compact line each, absent fields left out.</summary>
    public static SubmissionOutputJson Lines { get; } = new(new JsonSerializerOptions
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });
}
