using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace Conveyor.Dashboard.Tests;

/// <summary>A server with API keys: the page asks for one and shows only what the key's role may do.</summary>
[Collection(BrowserCollection.Name)]
public sealed class AuthPageTests(BrowserFixture browser)
{
    private TestServer Server => browser.Keyed;

    private static async Task SignIn(IPage page, string key)
    {
        await page.GetByLabel("API key").FillAsync(key);
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
    }

    [Fact]
    public async Task With_keys_configured_the_page_asks_for_one_and_refuses_an_unknown_key()
    {
        var queue = Seed.UniqueQueue("auth");
        await Server.Http.Enqueue(queue);
        await using var tab = await browser.NewPageAsync(Server);
        var page = tab.Page;
        await page.GotoAsync("/");
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Sign in to Conveyor" })).ToBeVisibleAsync();
        await Expect(page.Locator("tr[data-queue]")).ToHaveCountAsync(0);

        await SignIn(page, "not-a-key-this-server-knows");
        await Expect(page.GetByRole(AriaRole.Alert)).ToHaveTextAsync("That key is not one this server knows.");

        await SignIn(page, BrowserFixture.AdminKey);
        await Expect(page.Locator($"tr[data-queue='{queue}'] td[data-state='available']")).ToHaveTextAsync("1");
        await Expect(page.Locator("[data-role]")).ToHaveTextAsync("admin");
        await Expect(page.Locator($"tr[data-queue='{queue}']").GetByRole(AriaRole.Button, new() { Name = "Pause" })).ToBeVisibleAsync();

        // The key is kept for the tab: a reload does not ask again. Signing out does.
        await page.ReloadAsync();
        await Expect(page.Locator($"tr[data-queue='{queue}']")).ToBeVisibleAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign out" }).ClickAsync();
        await Expect(page.GetByLabel("API key")).ToBeVisibleAsync();
    }

    [Fact]
    public async Task A_producer_key_sees_jobs_but_no_destructive_actions()
    {
        var queue = Seed.UniqueQueue("producer");
        var dead = await Server.Http.DeadJob(queue);
        var waiting = await Server.Http.Enqueue(queue);
        await using var tab = await browser.NewPageAsync(Server);
        var page = tab.Page;
        await page.GotoAsync("/");
        await SignIn(page, BrowserFixture.ProducerKey);

        var row = page.Locator($"tr[data-queue='{queue}']");
        await Expect(row.Locator("td[data-state='dead']")).ToHaveTextAsync("1");
        await Expect(page.Locator("[data-role]")).ToHaveTextAsync("producer · read-only");
        await Expect(page.Locator("main").GetByRole(AriaRole.Button)).ToHaveCountAsync(0);

        await page.GotoAsync($"/#/jobs/{dead}");
        await Expect(page.Locator("h1 [data-state]")).ToHaveTextAsync("dead");
        await Expect(page.Locator("[data-section='events'] [data-event='failed']")).ToBeVisibleAsync();
        await Expect(page.Locator(".job-actions button")).ToHaveCountAsync(0);

        await page.GotoAsync($"/#/jobs/{waiting}");
        await Expect(page.Locator("h1 [data-state]")).ToHaveTextAsync("available");
        await Expect(page.Locator(".job-actions button")).ToHaveCountAsync(0);
    }
}
