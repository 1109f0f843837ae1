using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace Conveyor.Dashboard.Tests;

/// <summary>The dashboard in headless Chromium against a real server with real jobs.</summary>
[Collection(BrowserCollection.Name)]
public sealed class DashboardPageTests(BrowserFixture browser)
{
    private TestServer Server => browser.Open;

    private static ILocator Cell(IPage page, string queue, string state) => page.Locator($"tr[data-queue='{queue}'] td[data-state='{state}']");

    private static ILocator Confirm(IPage page, string button) =>
        page.GetByRole(AriaRole.Dialog).GetByRole(AriaRole.Button, new() { Name = button, Exact = true });

    [Fact]
    public async Task Overview_shows_every_queue_with_its_counts_per_state_and_paused_flag()
    {
        var queue = Seed.UniqueQueue("counts");
        var paused = Seed.UniqueQueue("paused");
        for (var i = 0; i < 3; i++) await Server.Http.Enqueue(queue);
        await Server.Http.Enqueue(queue, """{"kind":"later","delay_ms":3600000}""");
        await Server.Http.Complete(await Server.Http.Lease(queue));
        await Server.Http.Lease(queue); // stays running
        await Server.Http.DeadJob(queue);
        var cancelled = await Server.Http.Enqueue(queue);
        await Server.Http.Send(HttpMethod.Post, $"/v1/jobs/{cancelled}/cancel");
        await Server.Http.Enqueue(paused);
        await Server.Http.Send(HttpMethod.Post, $"/v1/queues/{paused}/pause");

        await using var tab = await browser.NewPageAsync(Server);
        var page = tab.Page;
        await page.GotoAsync("/");
        // Of the first three: one completed, one running, one failed for good; the dead helper's own job waits.
        await Expect(Cell(page, queue, "available")).ToHaveTextAsync("1");
        await Expect(Cell(page, queue, "scheduled")).ToHaveTextAsync("1");
        await Expect(Cell(page, queue, "running")).ToHaveTextAsync("1");
        await Expect(Cell(page, queue, "completed")).ToHaveTextAsync("1");
        await Expect(Cell(page, queue, "dead")).ToHaveTextAsync("1");
        await Expect(Cell(page, queue, "cancelled")).ToHaveTextAsync("1");
        await Expect(page.Locator($"tr[data-queue='{queue}'] [data-paused]")).ToHaveTextAsync("active");
        await Expect(page.Locator($"tr[data-queue='{paused}'] [data-paused]")).ToHaveTextAsync("paused");
        await Expect(Cell(page, paused, "available")).ToHaveTextAsync("1");
    }

    [Fact]
    public async Task Overview_refreshes_counts_and_draws_the_throughput_chart_without_a_reload()
    {
        var queue = Seed.UniqueQueue("live");
        await Server.Http.Enqueue(queue);
        await using var tab = await browser.NewPageAsync(Server);
        var page = tab.Page;
        await page.GotoAsync("/");
        await Expect(Cell(page, queue, "available")).ToHaveTextAsync("1");
        var url = page.Url;

        for (var i = 0; i < 4; i++) await Server.Http.Enqueue(queue);
        await Expect(Cell(page, queue, "available")).ToHaveTextAsync("5");
        // The sampler records a second with enqueued jobs in it, and the chart draws lines from the history.
        await Expect(page.Locator(".chart path.line.s-enqueued").First).ToBeAttachedAsync();
        await Expect(page.Locator(".live")).ToHaveTextAsync("Live");
        Assert.Equal(url, page.Url);
    }

    [Fact]
    public async Task Job_detail_shows_payload_errors_with_stack_and_the_event_timeline()
    {
        var queue = Seed.UniqueQueue("detail");
        var id = await Server.Http.Enqueue(queue, """{"kind":"email.send","payload":{"to":"ada@example.com"},"max_attempts":2,"tags":["welcome"]}""");
        await Server.Http.Fail(await Server.Http.Lease(queue), "smtp timeout", "at Mailer.Send()\n  at Worker.Run()");
        await Server.Http.Fail(await Server.Http.Lease(queue), "smtp refused");

        await using var tab = await browser.NewPageAsync(Server);
        var page = tab.Page;
        await page.GotoAsync($"/#/jobs/{id}");
        await Expect(page.GetByRole(AriaRole.Heading, new() { Level = 1 })).ToContainTextAsync($"Job #{id}");
        await Expect(page.Locator("h1 [data-state]")).ToHaveTextAsync("dead");
        await Expect(page.Locator("[data-section='payload'] pre")).ToContainTextAsync("\"to\": \"ada@example.com\"");
        await Expect(page.Locator("[data-section='errors'] .error-message")).ToHaveTextAsync(["smtp refused", "smtp timeout"]);
        await page.GetByText("Stack trace").ClickAsync();
        await Expect(page.Locator("[data-section='errors'] .stack")).ToContainTextAsync("at Mailer.Send()");
        var events = page.Locator("[data-section='events'] li");
        await Expect(events).ToHaveCountAsync(5);
        var types = await page.Locator("[data-section='events'] li").EvaluateAllAsync<string[]>("items => items.map(i => i.dataset.event)");
        Assert.Equal(["created", "started", "failed", "started", "failed"], types);
        await Expect(page.Locator("[data-section='facts']")).ToContainTextAsync("welcome");
    }

    [Fact]
    public async Task Retrying_a_dead_job_from_its_page_makes_it_available_again()
    {
        var queue = Seed.UniqueQueue("retry");
        var id = await Server.Http.DeadJob(queue);
        await using var tab = await browser.NewPageAsync(Server);
        var page = tab.Page;
        await page.GotoAsync($"/#/jobs/{id}");
        await Expect(page.Locator("h1 [data-state]")).ToHaveTextAsync("dead");

        await page.GetByRole(AriaRole.Button, new() { Name = "Retry", Exact = true }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Dialog)).ToContainTextAsync($"Retry job #{id}?");
        await Confirm(page, "Retry").ClickAsync();

        await Expect(page.Locator("h1 [data-state]")).ToHaveTextAsync("available");
        await Expect(page.Locator("[data-section='events'] [data-event='retried']")).ToBeVisibleAsync();
        Assert.Equal("available", await Server.Http.State(id));
        await Server.Http.Lease(queue); // and a worker gets it
    }

    [Fact]
    public async Task Cancel_asks_first_and_changes_nothing_when_dismissed()
    {
        var queue = Seed.UniqueQueue("cancel");
        var id = await Server.Http.Enqueue(queue);
        await using var tab = await browser.NewPageAsync(Server);
        var page = tab.Page;
        await page.GotoAsync($"/#/jobs/{id}");
        var cancel = page.GetByRole(AriaRole.Button, new() { Name = "Cancel", Exact = true });

        await cancel.ClickAsync();
        await Confirm(page, "Cancel").ClickAsync(); // the dialog's own "Cancel": keep the job
        await Expect(page.GetByRole(AriaRole.Dialog)).ToBeHiddenAsync();
        Assert.Equal("available", await Server.Http.State(id));

        await cancel.ClickAsync();
        await Confirm(page, "Cancel job").ClickAsync();
        await Expect(page.Locator("h1 [data-state]")).ToHaveTextAsync("cancelled");
        Assert.Equal("cancelled", await Server.Http.State(id));
        await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Retry", Exact = true })).ToBeVisibleAsync();
    }

    [Fact]
    public async Task Pausing_and_resuming_a_queue_from_the_overview()
    {
        var queue = Seed.UniqueQueue("pause");
        await Server.Http.Enqueue(queue);
        await using var tab = await browser.NewPageAsync(Server);
        var page = tab.Page;
        await page.GotoAsync("/");
        var row = page.Locator($"tr[data-queue='{queue}']");

        await row.GetByRole(AriaRole.Button, new() { Name = "Pause" }).ClickAsync();
        await Confirm(page, "Pause").ClickAsync();
        await Expect(row.Locator("[data-paused]")).ToHaveTextAsync("paused");
        Assert.True((bool)(await Server.Http.Queue(queue))["paused"]!);
        await Server.Http.Send(HttpMethod.Post, $"/v1/queues/{queue}/lease", """{"max":1,"wait_ms":0}""", expect: 204);

        await row.GetByRole(AriaRole.Button, new() { Name = "Resume" }).ClickAsync();
        await Confirm(page, "Resume").ClickAsync();
        await Expect(row.Locator("[data-paused]")).ToHaveTextAsync("active");
        Assert.False((bool)(await Server.Http.Queue(queue))["paused"]!);
        await Server.Http.Lease(queue);
    }

    [Fact]
    public async Task Retrying_every_dead_job_of_a_queue_at_once()
    {
        var queue = Seed.UniqueQueue("bulk");
        for (var i = 0; i < 3; i++) await Server.Http.DeadJob(queue);
        await using var tab = await browser.NewPageAsync(Server);
        var page = tab.Page;
        await page.GotoAsync("/");
        await Expect(Cell(page, queue, "dead")).ToHaveTextAsync("3");

        await page.Locator($"tr[data-queue='{queue}']").GetByRole(AriaRole.Button, new() { Name = "Retry 3 dead" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Dialog)).ToContainTextAsync("3 dead jobs go back to available");
        await Confirm(page, "Retry all").ClickAsync();

        await Expect(Cell(page, queue, "dead")).ToHaveTextAsync("0");
        await Expect(Cell(page, queue, "available")).ToHaveTextAsync("3");
        await Expect(page.Locator(".toast")).ToContainTextAsync("3 dead jobs");
    }

    [Fact]
    public async Task Jobs_list_filters_by_queue_state_and_kind_and_pages_with_the_cursor()
    {
        var queue = Seed.UniqueQueue("list");
        for (var i = 0; i < 55; i++) await Server.Http.Enqueue(queue, $$$"""{"kind":"report.render","payload":{"n":{{{i}}}}}""");
        for (var i = 0; i < 3; i++) await Server.Http.Enqueue(queue, """{"kind":"email.send","tags":["vip"]}""");
        var dead = await Server.Http.DeadJob(queue);

        await using var tab = await browser.NewPageAsync(Server);
        var page = tab.Page;
        await page.GotoAsync($"/#/jobs?queue={queue}&kind=report.render");
        var rows = page.Locator("tr[data-job]");
        await Expect(rows).ToHaveCountAsync(50);
        await page.GetByRole(AriaRole.Link, new() { Name = "Older →" }).ClickAsync();
        await Expect(rows).ToHaveCountAsync(5);
        await Expect(page.GetByRole(AriaRole.Link, new() { Name = "Older →" })).ToHaveCountAsync(0);
        await page.GetByRole(AriaRole.Link, new() { Name = "← Newer" }).ClickAsync();
        await Expect(rows).ToHaveCountAsync(50);

        await page.GetByLabel("Kind").FillAsync("");
        await page.GetByLabel("Tag").FillAsync("vip");
        await page.GetByRole(AriaRole.Button, new() { Name = "Filter" }).ClickAsync();
        await Expect(rows).ToHaveCountAsync(3);
        await Expect(rows.Locator("td.kind")).ToHaveTextAsync(["email.send", "email.send", "email.send"]);

        await page.GetByLabel("Tag").FillAsync("");
        await page.GetByLabel("Text in payload").FillAsync("\"n\":42");
        await page.GetByRole(AriaRole.Button, new() { Name = "Filter" }).ClickAsync();
        await Expect(rows).ToHaveCountAsync(1);
        await page.GetByLabel("Text in payload").FillAsync("");

        await page.GotoAsync($"/#/jobs?queue={queue}");
        await page.GetByLabel("State").SelectOptionAsync("dead");
        await Expect(rows).ToHaveCountAsync(1);
        await rows.GetByRole(AriaRole.Link, new() { Name = $"#{dead}" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Heading, new() { Level = 1 })).ToContainTextAsync($"Job #{dead}");
    }

    [Fact]
    public async Task A_state_chosen_before_the_queue_list_arrives_keeps_the_queue_filter()
    {
        var queue = Seed.UniqueQueue("early");
        var dead = await Server.Http.DeadJob(queue);
        await Server.Http.DeadJob(Seed.UniqueQueue("early-other"));

        await using var tab = await browser.NewPageAsync(Server);
        var page = tab.Page;
        // The queue list is held back until the end, so the state is chosen while the queue select has no list yet.
        var release = new TaskCompletionSource();
        await page.RouteAsync("**/v1/queues", async route =>
        {
            await release.Task;
            await route.ContinueAsync();
        });
        try
        {
            await page.GotoAsync($"/#/jobs?queue={queue}");
            var rows = page.Locator("tr[data-job]");
            await Expect(rows).ToHaveCountAsync(1); // the queue's one job, before any state filter
            await page.GetByLabel("State").SelectOptionAsync("dead");
            await Expect(page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex("state=dead"));
            await Expect(rows).ToHaveCountAsync(1);
            await Expect(rows.GetByRole(AriaRole.Link, new() { Name = $"#{dead}" })).ToHaveCountAsync(1);
            Assert.Contains($"queue={queue}", page.Url, StringComparison.Ordinal);
        }
        finally
        {
            release.TrySetResult();
        }
    }

    [Fact]
    public async Task Pages_fit_a_narrow_window_without_sideways_scrolling()
    {
        var queue = Seed.UniqueQueue("narrow-queue-with-a-long-name");
        var id = await Server.Http.DeadJob(queue, "a long error message that has to wrap somewhere on a phone-sized screen without pushing the page wider");
        await using var tab = await browser.NewPageAsync(Server, width: 390, height: 844);
        var page = tab.Page;
        foreach (var route in new[] { "/", $"/#/jobs?queue={queue}", $"/#/jobs/{id}" })
        {
            await page.GotoAsync(route);
            await Expect(page.Locator("main h1")).ToBeVisibleAsync();
            await Expect(page.Locator(".loading")).ToHaveCountAsync(0);
            var overflow = await page.EvaluateAsync<int>("document.documentElement.scrollWidth - window.innerWidth");
            Assert.True(overflow <= 0, $"{route} is {overflow}px wider than a 390px window");
        }
    }

    [Fact]
    public async Task Schedules_are_listed_with_their_next_run_and_submissions_with_their_progress()
    {
        var name = Seed.UniqueQueue("nightly");
        await Server.Http.Send(HttpMethod.Put, $"/v1/schedules/{name}", """{"cron":"0 3 * * *","queue":"reports","job":{"kind":"report.daily"}}""", expect: 201);
        var submission = await Server.Http.Send(HttpMethod.Post, "/v1/submissions",
            $$"""{"queue":"{{Seed.UniqueQueue("chunks")}}","chunk_size":100,"chunks":[{"data":1},{"data":2}]}""", expect: 201);
        var id = (long)submission!["id"]!;
        await using var tab = await browser.NewPageAsync(Server);
        var page = tab.Page;
        await page.GotoAsync("/");
        // The menu offers what the server's API has (read from its OpenAPI document).
        await Expect(page.GetByRole(AriaRole.Navigation, new() { Name = "Sections" }).GetByRole(AriaRole.Link)).ToHaveTextAsync(["Overview", "Jobs", "Submissions", "Schedules"]);
        await page.GotoAsync("/#/schedules");
        var row = page.Locator("tbody tr", new() { HasText = name });
        await Expect(row).ToContainTextAsync("0 3 * * *");
        await Expect(row.Locator("td[data-label='next run at']")).ToContainTextAsync("03:00:00");

        await page.GotoAsync("/#/submissions");
        var listed = page.Locator($"tbody tr[data-id='{id}']");
        await Expect(listed.Locator("td[data-label='progress']")).ToHaveTextAsync("0 of 2 chunks");
        await Expect(listed.Locator("td[data-label='state']")).ToHaveTextAsync("in progress");
        await listed.GetByRole(AriaRole.Link, new() { Name = id.ToString(System.Globalization.CultureInfo.InvariantCulture) }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = $"Submission {id} (in progress)" })).ToBeVisibleAsync();
        await Expect(page.GetByRole(AriaRole.Progressbar)).ToHaveAttributeAsync("aria-valuemax", "2");
    }

    [Fact]
    public async Task Deleting_a_finished_job_asks_first_and_removes_it()
    {
        var queue = Seed.UniqueQueue("delete");
        var id = await Server.Http.DeadJob(queue);
        await using var tab = await browser.NewPageAsync(Server);
        var page = tab.Page;
        await page.GotoAsync($"/#/jobs/{id}");
        await page.GetByRole(AriaRole.Button, new() { Name = "Delete", Exact = true }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Dialog)).ToContainTextAsync($"Delete job #{id}?");
        await Confirm(page, "Delete").ClickAsync();
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Jobs", Exact = true })).ToBeVisibleAsync();
        await Server.Http.Send(HttpMethod.Get, $"/v1/jobs/{id}", expect: 404);
    }
}
