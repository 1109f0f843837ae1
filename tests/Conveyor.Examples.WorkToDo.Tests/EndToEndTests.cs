using System.Net;
using System.Text.Json;
using WorkToDo.Core;
using WorkToDo.TaskProducer;

namespace Conveyor.Examples.WorkToDo.Tests;

/// <summary>Works created through the API and through the producer's RabbitMQ demands, computed by the consumer.</summary>
public sealed class EndToEndTests(WorkToDoStack stack) : IClassFixture<WorkToDoStack>
{
    [Fact]
    public async Task Works_from_the_api_and_from_the_producer_all_end_done_with_their_sum_and_three_events()
    {
        var fromApi = new List<Work>();
        for (var i = 0; i < 4; i++) fromApi.Add(await stack.CreateThroughApiAsync());
        Assert.All(fromApi, w =>
        {
            Assert.Matches("^api-[a-z0-9]{10}$", w.WorkCode);
            Assert.InRange(w.AddUpTo, 1, 99);
            Assert.False(w.Done);
            Assert.Null(w.Result);
        });

        var log = new StringWriter();
        var producer = new DemandProducer(
            new ProducerSettings { Amqp = stack.Amqp, RabbitQueue = stack.RabbitQueue, Every = TimeSpan.FromMilliseconds(50), Count = 4 }, log);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        Assert.Equal(4, await producer.RunAsync(timeout.Token));
        // "published demand <message id>: add_up_to=<n>": the consumer names each work after its message id.
        var demands = log.ToString().Split('\n')
            .Select(line => System.Text.RegularExpressions.Regex.Match(line, "^published demand ([0-9a-f]{32}): add_up_to=([0-9]+)$"))
            .Where(m => m.Success)
            .ToDictionary(m => WorkCodes.ForDemand(m.Groups[1].Value), m => int.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(4, demands.Count);

        var fromProducer = new List<Work>();
        foreach (var (code, addUpTo) in demands)
        {
            var work = await stack.ExplainTimeoutAsync(() => TestServices.Eventually(
                async () => await stack.Store.GetByCodeAsync(code) is { Done: true } done ? done : null, $"work {code} to be done"));
            Assert.Equal(addUpTo, work.AddUpTo);
            Assert.Matches("^consumer-[a-z0-9]{10}$", work.WorkCode);
            fromProducer.Add(work);
        }

        foreach (var created in fromApi)
        {
            var done = await stack.DoneAsync(created.Id);
            Assert.Equal(created.WorkCode, done.WorkCode);
        }

        foreach (var work in fromApi.Select(w => w.Id).Concat(fromProducer.Select(w => w.Id)))
        {
            // Read back through the API, as a client sees it.
            var detail = JsonSerializer.Deserialize(await stack.Http.GetStringAsync($"/work/{work}"), WorkJson.Default.WorkDetail)!;
            var sum = (long)detail.AddUpTo * (detail.AddUpTo + 1) / 2;
            Assert.True(detail.Done);
            Assert.Equal(sum, detail.Result);
            Assert.Equal([WorkNames.EventStart, WorkNames.EventStop, WorkNames.EventResult], detail.Events.Select(e => e.Variable));
            Assert.All(detail.Events, e => Assert.Equal(detail.WorkCode, e.WorkCode));
            Assert.Equal(detail.AddUpTo.ToString(System.Globalization.CultureInfo.InvariantCulture), detail.Events[0].Value);
            Assert.Equal(sum.ToString(System.Globalization.CultureInfo.InvariantCulture), detail.Events[2].Value);
            Assert.InRange(detail.UpdatedOn, detail.CreatedOn, detail.CreatedOn + 60);
            Assert.All(detail.Events, e => Assert.InRange(e.CreatedOn, detail.CreatedOn, detail.UpdatedOn));
        }
    }

    [Fact]
    public async Task Api_answers_problem_json_for_a_missing_or_malformed_id_and_a_bad_search()
    {
        using var missing = await stack.Http.GetAsync("/work/987654321");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Equal("application/problem+json", missing.Content.Headers.ContentType?.MediaType);
        Assert.Contains("Work 987654321 was not found.", await missing.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        foreach (var (url, says) in new[]
        {
            ("/work/abc", "positive whole number"),
            ("/work/99999999999999999999", "positive whole number"),
            ("/work/0", "positive whole number"),
            ("/work/search?since=yesterday", "since must be"),
            ("/work/search?since=0h", "since must be"),
            ("/work/search?limit=0", "limit must be"),
        })
        {
            using var response = await stack.Http.GetAsync(url);
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            Assert.Contains(says, await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Search_matches_a_code_prefix_within_the_time_window_newest_first()
    {
        var first = await stack.CreateThroughApiAsync();
        var second = await stack.CreateThroughApiAsync();

        var byPrefix = Search(await stack.Http.GetStringAsync($"/work/search?work_code={second.WorkCode[..8]}"));
        Assert.Contains(byPrefix, w => w.Id == second.Id);
        Assert.All(byPrefix, w => Assert.StartsWith(second.WorkCode[..8], w.WorkCode, StringComparison.Ordinal));

        var ids = Search(await stack.Http.GetStringAsync("/work/search?work_code=api-&since=1h")).Select(w => w.Id).ToList();
        Assert.True(ids.IndexOf(second.Id) is >= 0 and var at && at < ids.IndexOf(first.Id), "newest first");

        // LIKE wildcards in the prefix are matched literally.
        Assert.Empty(Search(await stack.Http.GetStringAsync("/work/search?work_code=%25")));
        Assert.Empty(Search(await stack.Http.GetStringAsync("/work/search?work_code=api_")));

        static IReadOnlyList<Work> Search(string json) => JsonSerializer.Deserialize(json, WorkJson.Default.IReadOnlyListWork)!;
    }

    [Fact]
    public async Task Computing_a_work_again_changes_nothing_and_records_its_events_once()
    {
        // What a redelivered job (at-least-once) does: the row lock and the done check make the second run a no-op.
        var work = await stack.Store.CreateApiWorkAsync(10);
        var results = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => stack.Store.ComputeAsync(work.Id)));
        Assert.All(results, r => Assert.Equal(55, r!.Result));
        Assert.Equal(3, (await stack.Store.EventsAsync(work.WorkCode)).Count);
        Assert.Null(await stack.Store.ComputeAsync(long.MaxValue));
    }

    [Fact]
    public async Task A_work_whose_job_was_never_enqueued_is_enqueued_again_by_the_api_and_computed()
    {
        // As if the API had died between committing the row and enqueuing its job.
        var orphan = await stack.Store.CreateApiWorkAsync(12);
        var done = await stack.DoneAsync(orphan.Id);
        Assert.Equal(78, done.Result);
    }

    [Fact]
    public async Task A_demand_delivered_twice_becomes_one_work()
    {
        var code = WorkCodes.ForDemand("message-1");
        var once = await stack.Store.CreateOrGetAsync(code, 7);
        var twice = await stack.Store.CreateOrGetAsync(code, 7);
        Assert.Equal(once.Id, twice.Id);
    }
}
